// Usage records: filter by studio, user, model and time; a paged table; a
// CSV of every page (fetched page by page).
import type { UsageRecord } from "../../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { allPages, describeError, PAGE_MAX, timestamp } from "../api.js";
import { usageCsv } from "../csv.js";
import { count, elapsed, micros, time } from "../format.js";
import type { PageContext } from "../page.js";
import type { FilterInit } from "../usage.js";
import { button, field, h, input, notice, table } from "../ui.js";

const PAGE_SIZE = 50;

export async function usagePage(ctx: PageContext): Promise<HTMLElement> {
  const studio = input("studio", { placeholder: "every studio" });
  if (!ctx.operator) {
    studio.value = ctx.session.studioId!;
    studio.disabled = true;
  }
  const user = input("user", { placeholder: "every user" });
  const model = input("model", { placeholder: "every model" });
  const since = input("since", { type: "datetime-local" });
  const until = input("until", { type: "datetime-local" });
  const message = h("div");
  const results = h("div", { "data-testid": "usage-results" });
  const filter = (): FilterInit => ({
    studioId: studio.value.trim(),
    userId: user.value.trim(),
    modelId: model.value.trim(),
    startTime: since.value ? timestamp(new Date(`${since.value}Z`)) : undefined,
    endTime: until.value ? timestamp(new Date(`${until.value}Z`)) : undefined,
  });
  const form = h(
    "form",
    { class: "inline", "data-testid": "usage-filter" },
    field("Studio", studio),
    field("User", user),
    field("Model", model),
    field("From (UTC)", since),
    field("Until (UTC)", until),
    h("button", { type: "submit" }, "Show"),
    button("Download CSV (every page)", () => void download(ctx, filter(), message), { "data-testid": "download-csv" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void showPage(ctx, filter(), [""], results, message);
  });
  await showPage(ctx, filter(), [""], results, message);
  return h("div", {}, form, message, results);
}

/** Shows the page whose token ends `tokens` (the earlier ones allow going back). */
async function showPage(ctx: PageContext, filter: FilterInit, tokens: string[], results: HTMLElement, message: HTMLElement): Promise<void> {
  try {
    const pageToken = tokens[tokens.length - 1];
    const answer = await ctx.admin.listUsageRecords({ filter, pageSize: PAGE_SIZE, pageToken });
    const previous = tokens.length > 1 ? button("Previous", () => void showPage(ctx, filter, tokens.slice(0, -1), results, message)) : null;
    const next = answer.nextPageToken
      ? button("Next", () => void showPage(ctx, filter, [...tokens, answer.nextPageToken], results, message), { "data-testid": "next-page" })
      : null;
    results.replaceChildren(
      table("usage", ["time", "studio", "user", "model", "tokens in / out", "cost", "status", "latency", "request"], answer.records.map(row)),
      h("p", { class: "pager" }, previous, ` page ${tokens.length} `, next),
    );
  } catch (err) {
    notice(message, describeError(err), "error");
  }
}

function row(r: UsageRecord): (string | HTMLElement)[] {
  const status = r.statusCode === 0 ? "ok" : r.errorReason || `code ${r.statusCode}`;
  return [
    time(r.createTime), r.studioId, r.userId, r.modelId,
    `${count(r.inputTokens)} / ${count(r.outputTokens)}`, micros(r.costMicros),
    h("span", { class: r.statusCode === 0 ? "status active" : "status suspended" }, status),
    elapsed(r.latency), h("code", {}, r.requestId),
  ];
}

async function download(ctx: PageContext, filter: FilterInit, message: HTMLElement): Promise<void> {
  try {
    const records = await allPages(async (pageToken) => {
      const answer = await ctx.admin.listUsageRecords({ filter, pageSize: PAGE_MAX, pageToken });
      return { items: answer.records, next: answer.nextPageToken };
    });
    const url = URL.createObjectURL(new Blob([usageCsv(records)], { type: "text/csv" }));
    const link = h("a", { href: url, download: "usage.csv" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    notice(message, `Downloaded ${records.length} usage records.`, "ok");
  } catch (err) {
    notice(message, describeError(err), "error");
  }
}
