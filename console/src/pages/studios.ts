// Studios: the list, suspend/activate, the model allow-list, and limits
// with their standing as bars. A studio key sees its own studio only.
import { LimitTarget, StudioStatus, type Limits, type Studio } from "../../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { allPages, describeError, PAGE_MAX } from "../api.js";
import { count, enumName, time } from "../format.js";
import type { PageContext } from "../page.js";
import { button, field, h, input, notice, section, standingBar, table } from "../ui.js";

export async function studiosPage(ctx: PageContext): Promise<HTMLElement> {
  const studios = await listStudios(ctx);
  const detail = h("div", { "data-testid": "studio-detail" });
  const message = h("div");
  const page = h("div", {}, message);
  const rows = studios.map((studio) => [
    h("a", { href: "#/studios", "data-studio": studio.id, onclick: () => void showDetail(ctx, studio, detail) }, studio.id),
    studio.displayName,
    h("span", { class: `status ${statusName(studio.status)}`, "data-testid": `status-${studio.id}` }, statusName(studio.status)),
    studio.allowedModelIds.length ? studio.allowedModelIds.join(", ") : "every model",
    time(studio.createTime),
    ctx.operator ? statusButton(ctx, studio, message) : null,
  ]);
  const headers = ["studio", "name", "status", "allowed models", "created", ...(ctx.operator ? [""] : [])];
  page.append(table("studios", headers, rows), detail);
  if (studios.length > 0) void showDetail(ctx, studios[0], detail);
  return page;
}

async function listStudios(ctx: PageContext): Promise<Studio[]> {
  if (!ctx.operator) {
    const answer = await ctx.admin.getStudio({ studioId: ctx.session.studioId! });
    return answer.studio ? [answer.studio] : [];
  }
  return allPages(async (pageToken) => {
    const answer = await ctx.admin.listStudios({ pageSize: PAGE_MAX, pageToken });
    return { items: answer.studios, next: answer.nextPageToken };
  });
}

function statusName(status: StudioStatus): string {
  return enumName(StudioStatus, status, "STUDIO_STATUS_");
}

function statusButton(ctx: PageContext, studio: Studio, message: HTMLElement): HTMLElement {
  const suspended = studio.status === StudioStatus.SUSPENDED;
  const label = suspended ? "Activate" : "Suspend";
  return button(
    label,
    async () => {
      try {
        const status = suspended ? StudioStatus.ACTIVE : StudioStatus.SUSPENDED;
        await ctx.admin.updateStudio({ studioId: studio.id, status });
        ctx.refresh();
      } catch (err) {
        notice(message, describeError(err), "error");
      }
    },
    { "data-testid": `${label.toLowerCase()}-${studio.id}` },
  );
}

/** One studio's allow-list, limits and standing. */
async function showDetail(ctx: PageContext, studio: Studio, detail: HTMLElement): Promise<void> {
  const message = h("div");
  try {
    const [limits, standing] = await Promise.all([
      ctx.admin.getLimits({ studioId: studio.id, target: LimitTarget.STUDIO }),
      ctx.admin.getQuotaStanding({ studioId: studio.id }),
    ]);
    const standingRows = standing.limits.map((s) => [
      `${s.scope} ${s.limit}`,
      standingBar(Number(s.used), Number(s.reserved), Number(s.value)),
      `${count(s.used)} used + ${count(s.reserved)} reserved of ${count(s.value)} per ${s.window}`,
      time(s.resetTime),
    ]);
    const allowed = ctx.operator ? [section("Allowed models", await allowList(ctx, studio, message))] : [];
    detail.replaceChildren(
      h("h2", {}, `Studio ${studio.id}`),
      message,
      section("Standing", table("standing", ["limit", "", "", "resets"], standingRows)),
      section(ctx.operator ? "Limits (the operator's ceiling)" : "Limits (your studio's own tier)", limitsForm(ctx, studio, limits.limits, message)),
      ...allowed,
    );
  } catch (err) {
    notice(detail, describeError(err), "error");
  }
}

const LIMIT_FIELDS: { key: keyof Omit<Limits, "$typeName" | "$unknown">; label: string }[] = [
  { key: "requestsPerMinute", label: "requests per minute" },
  { key: "tokensPerMinute", label: "tokens per minute" },
  { key: "tokensPerDay", label: "tokens per day" },
  { key: "costMicrosPerDay", label: "cost per day (micros)" },
  { key: "costMicrosPerMonth", label: "cost per month (micros)" },
];

function limitsForm(ctx: PageContext, studio: Studio, limits: Limits | undefined, message: HTMLElement): HTMLElement {
  const inputs = LIMIT_FIELDS.map(({ key }) =>
    input(key, { type: "number", min: "0", value: limits?.[key]?.toString() ?? "", placeholder: "no limit" }),
  );
  const form = h("form", { class: "inline" }, LIMIT_FIELDS.map(({ label }, i) => field(label, inputs[i])), h("button", { type: "submit" }, "Save limits"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const set: Record<string, bigint> = {};
    LIMIT_FIELDS.forEach(({ key }, i) => {
      if (inputs[i].value !== "") set[key] = BigInt(inputs[i].value);
    });
    try {
      await ctx.admin.setLimits({ studioId: studio.id, target: LimitTarget.STUDIO, limits: set });
      await showDetail(ctx, studio, form.closest("[data-testid=studio-detail]") as HTMLElement);
    } catch (err) {
      notice(message, describeError(err), "error");
    }
  });
  return form;
}

async function allowList(ctx: PageContext, studio: Studio, message: HTMLElement): Promise<HTMLElement> {
  const models = await allPages(async (pageToken) => {
    const answer = await ctx.admin.listCatalogModels({ pageSize: PAGE_MAX, pageToken });
    return { items: answer.models, next: answer.nextPageToken };
  });
  const boxes = models.map((model) =>
    input("model", { type: "checkbox", value: model.id, checked: studio.allowedModelIds.includes(model.id) }),
  );
  const form = h(
    "form",
    { class: "inline" },
    h("p", { class: "hint" }, "None ticked allows every model."),
    models.map((model, i) => h("label", { class: "check" }, boxes[i], model.id)),
    h("button", { type: "submit" }, "Save allow-list"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const modelIds = boxes.filter((box) => box.checked).map((box) => box.value);
    try {
      await ctx.admin.updateStudio({ studioId: studio.id, allowedModels: { modelIds } });
      ctx.refresh();
    } catch (err) {
      notice(message, describeError(err), "error");
    }
  });
  return form;
}
