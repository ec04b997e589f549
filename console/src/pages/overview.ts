// Calls, errors, tokens and cost per day over the last 30 days, by studio
// and by model, with the totals and the top studios and models.
import { UsageDimension, type UsageAggregate } from "../../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { timestamp } from "../api.js";
import { dailyChart, type DailySeries } from "../chart.js";
import { count, micros } from "../format.js";
import type { PageContext } from "../page.js";
import { add, aggregate, lastDays, METRICS, totalsOf, ZERO, type Totals } from "../usage.js";
import { h, section, table } from "../ui.js";

const DAYS = 30;
/** Lines per chart: the busiest groups, the rest summed as "others". */
const LINES = 6;

export async function overviewPage(ctx: PageContext): Promise<HTMLElement> {
  const days = lastDays(DAYS);
  const filter = { studioId: ctx.session.studioId ?? "", startTime: timestamp(new Date(`${days[0]}T00:00:00Z`)) };
  const [byStudio, byModel] = await Promise.all([
    aggregate(ctx.admin, filter, [UsageDimension.STUDIO, UsageDimension.DAY]),
    aggregate(ctx.admin, filter, [UsageDimension.MODEL, UsageDimension.DAY]),
  ]);
  const studios = groupTotals(byStudio, (row) => row.studioId);
  const models = groupTotals(byModel, (row) => row.modelId);
  const total = [...studios.values()].reduce(add, ZERO);
  return h(
    "div",
    {},
    h("p", { class: "hint" }, `Last ${DAYS} days (UTC), from ${days[0]}.`),
    totalsCards(total),
    section("By studio", charts(days, byStudio, (row) => row.studioId, studios)),
    section("By model", charts(days, byModel, (row) => row.modelId, models)),
    h(
      "div",
      { class: "columns" },
      section("Top studios", topTable("top-studios", "studio", studios)),
      section("Top models", topTable("top-models", "model", models)),
    ),
  );
}

function totalsCards(total: Totals): HTMLElement {
  const card = (label: string, testid: string, value: string) =>
    h("div", { class: "card" }, h("span", {}, label), h("strong", { "data-testid": testid }, value));
  return h(
    "div",
    { class: "cards" },
    card("Calls", "total-calls", count(total.calls)),
    card("Errors", "total-errors", count(total.errors)),
    card("Tokens", "total-tokens", count(total.tokens)),
    card("Cost", "total-cost", micros(total.costMicros)),
  );
}

/** Sums per group (studio or model) over every day. */
function groupTotals(rows: UsageAggregate[], key: (row: UsageAggregate) => string): Map<string, Totals> {
  const groups = new Map<string, Totals>();
  for (const row of rows) {
    groups.set(key(row), add(groups.get(key(row)) ?? ZERO, totalsOf(row)));
  }
  return groups;
}

/** The groups by calls, busiest first. */
function ranked(groups: Map<string, Totals>): [string, Totals][] {
  return [...groups.entries()].sort((a, b) => b[1].calls - a[1].calls || a[0].localeCompare(b[0]));
}

function charts(
  days: string[],
  rows: UsageAggregate[],
  key: (row: UsageAggregate) => string,
  groups: Map<string, Totals>,
): HTMLElement {
  const shown = ranked(groups).slice(0, LINES).map(([name]) => name);
  const dayIndex = new Map(days.map((day, i) => [day, i]));
  return h(
    "div",
    { class: "charts" },
    METRICS.map(({ key: metric, title }) => {
      const lines = new Map<string, number[]>();
      for (const row of rows) {
        const i = dayIndex.get(row.day);
        if (i === undefined) continue;
        const name = shown.includes(key(row)) ? key(row) : "others";
        const values = lines.get(name) ?? lines.set(name, new Array<number>(days.length).fill(0)).get(name)!;
        values[i] += totalsOf(row)[metric];
      }
      const series: DailySeries[] = [...lines.entries()].map(([label, values]) => ({ label, values }));
      if (metric !== "costMicros") return dailyChart(title, days, series, (n) => count(n));
      // Axis ticks in units with three significant digits: 0.000025, 1.5, 120.
      const units = (n: number) => String(Number((n / 1_000_000).toPrecision(3)));
      return dailyChart(title, days, series, (n) => micros(n), units);
    }),
  );
}

function topTable(testid: string, what: string, groups: Map<string, Totals>): HTMLElement {
  const rows = ranked(groups)
    .slice(0, 10)
    .map(([name, t]) => [name, count(t.calls), count(t.errors), count(t.tokens), micros(t.costMicros)]);
  return table(testid, [what, "calls", "errors", "tokens", "cost"], rows);
}
