// Usage records as RFC 4180 CSV, with the columns of `downcity admin usage
// export` (the proto's field names; times RFC 3339, durations `1.5s`,
// metadata as JSON).
import { Pathway } from "../../clients/typescript/src/gen/downcity/v1/common_pb.js";
import type { UsageRecord } from "../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { toDate } from "./api.js";
import { duration } from "./format.js";

export const CSV_COLUMNS = [
  "request_id", "studio_id", "user_id", "model_id", "provider_id", "pathway", "input_tokens", "output_tokens",
  "images", "cost_micros", "status_code", "error_reason", "latency", "time_to_first_token", "create_time", "metadata",
];

function cells(r: UsageRecord): string[] {
  const metadata = Object.keys(r.metadata).length ? JSON.stringify(r.metadata) : "{}";
  return [
    r.requestId, r.studioId, r.userId, r.modelId, r.providerId, Pathway[r.pathway] ?? String(r.pathway),
    String(r.inputTokens), String(r.outputTokens), String(r.images), String(r.costMicros), String(r.statusCode),
    r.errorReason, duration(r.latency), duration(r.timeToFirstToken), toDate(r.createTime)?.toISOString() ?? "", metadata,
  ];
}

/** A cell quoted when it must be; a text a spreadsheet would run as a formula gets a leading `'`. */
function escape(cell: string): string {
  const safe = /^[=+\-@\t\r]/.test(cell) ? `'${cell}` : cell;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

export function usageCsv(records: UsageRecord[]): string {
  const lines = [CSV_COLUMNS, ...records.map(cells)].map((row) => row.map(escape).join(","));
  return lines.join("\r\n") + "\r\n";
}
