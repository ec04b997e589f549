// Daily series as uPlot line charts: one line per studio or model.
import uPlot from "uplot";
import { h } from "./ui.js";

const COLORS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#6b7280"];

export interface DailySeries {
  label: string;
  values: number[];
}

/** A chart of `series` over `days` (YYYY-MM-DD, UTC), titled `title`. */
export function dailyChart(
  title: string,
  days: string[],
  series: DailySeries[],
  format: (n: number) => string,
  axisFormat?: (n: number) => string,
): HTMLElement {
  const holder = h("figure", { class: "chart", "data-testid": `chart-${title}` });
  const xs = days.map((day) => Date.parse(`${day}T00:00:00Z`) / 1000);
  const options: uPlot.Options = {
    title,
    // Two charts a row on a wide window, one on a narrow one.
    width: Math.round(Math.max(360, Math.min(640, (window.innerWidth - 90) / 2))),
    height: 200,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: { x: { time: true } },
    axes: [{}, { values: (_u, ticks) => ticks.map(axisFormat ?? format), size: 70 }],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        value: (_u: uPlot, v: number | null) => (v === null ? "" : format(v)),
      })),
    ],
  };
  const data: uPlot.AlignedData = [xs, ...series.map((s) => s.values)];
  // uPlot measures its root, so it is drawn once the figure is in the page.
  queueMicrotask(() => new uPlot(options, data, holder));
  return holder;
}
