// How numbers and times read on the page.
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { toDate } from "./api.js";

const integer = new Intl.NumberFormat("en-US");

export function count(n: bigint | number): string {
  return integer.format(n);
}

/** Micro-units as units with up to 6 decimals (1 unit = 1,000,000 micros). */
export function micros(n: bigint | number): string {
  const value = Number(n) / 1_000_000;
  return value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
}

/** A time as UTC, to the second; empty when unset. */
export function time(ts: Timestamp | undefined): string {
  const date = toDate(ts);
  return date ? date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

/** A duration as seconds (`1.5s`), the CLI's spelling; empty when unset. */
export function duration(d: Duration | undefined): string {
  if (!d) return "";
  const seconds = Number(d.seconds) + d.nanos / 1e9;
  return `${Number(seconds.toFixed(3))}s`;
}

/** A duration for people: `0.42 ms`, `120 ms`, `1.5 s`; empty when unset. */
export function elapsed(d: Duration | undefined): string {
  if (!d) return "";
  const ms = Number(d.seconds) * 1000 + d.nanos / 1e6;
  return ms < 1000 ? `${Number(ms.toPrecision(2))} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}

/** An enum value's name without its prefix: STUDIO_STATUS_ACTIVE → active. */
export function enumName(names: Record<number, string>, value: number, prefix: string): string {
  const name = names[value] ?? String(value);
  return name.replace(prefix, "").toLowerCase();
}
