// Usage aggregates as the overview needs them.
import { UsageDimension, type UsageAggregate, type UsageFilter } from "../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { UsageFilterSchema } from "../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { allPages, PAGE_MAX, type Admin } from "./api.js";

export type FilterInit = MessageInitShape<typeof UsageFilterSchema>;

/** Every row of AggregateUsage for `filter` grouped by `groupBy`. */
export function aggregate(admin: Admin, filter: FilterInit, groupBy: UsageDimension[]): Promise<UsageAggregate[]> {
  return allPages(async (pageToken) => {
    const answer = await admin.aggregateUsage({ filter, groupBy, pageSize: PAGE_MAX, pageToken });
    return { items: answer.rows, next: answer.nextPageToken };
  });
}

/** The numbers the console shows for a group of calls. */
export interface Totals {
  calls: number;
  errors: number;
  tokens: number;
  costMicros: number;
}

export const METRICS: { key: keyof Totals; title: string }[] = [
  { key: "calls", title: "Calls" },
  { key: "errors", title: "Errors" },
  { key: "tokens", title: "Tokens" },
  { key: "costMicros", title: "Cost" },
];

export function totalsOf(row: UsageAggregate): Totals {
  return {
    calls: Number(row.calls),
    errors: Number(row.failedCalls),
    tokens: Number(row.inputTokens + row.outputTokens),
    costMicros: Number(row.costMicros),
  };
}

export function add(a: Totals, b: Totals): Totals {
  return {
    calls: a.calls + b.calls,
    errors: a.errors + b.errors,
    tokens: a.tokens + b.tokens,
    costMicros: a.costMicros + b.costMicros,
  };
}

export const ZERO: Totals = { calls: 0, errors: 0, tokens: 0, costMicros: 0 };

/** The last `n` UTC days, oldest first, as YYYY-MM-DD. */
export function lastDays(n: number, now = new Date()): string[] {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: n }, (_, i) => new Date(today - (n - 1 - i) * 86_400_000).toISOString().slice(0, 10));
}

export type { UsageFilter };
