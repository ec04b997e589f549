// Hooks: the list, their deliveries by state, redeliver.
import { HookDeliveryState, HookEvent, HookFailurePolicy } from "../../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { allPages, describeError, PAGE_MAX } from "../api.js";
import { duration, enumName, time } from "../format.js";
import type { PageContext } from "../page.js";
import { studioIds, studioPicker } from "../studio-picker.js";
import { button, field, h, notice, section, table } from "../ui.js";

const DELIVERIES_SHOWN = 100;

export async function hooksPage(ctx: PageContext): Promise<HTMLElement> {
  const ids = await studioIds(ctx);
  const body = h("div");
  const cityWide: [string, string][] = ctx.operator ? [["", "City-wide"]] : [];
  return h("div", {}, studioPicker(ids, (studioId) => void renderStudio(ctx, studioId, body), cityWide), body);
}

async function renderStudio(ctx: PageContext, studioId: string, body: HTMLElement): Promise<void> {
  try {
    const hooks = await allPages(async (pageToken) => {
      const answer = await ctx.admin.listHooks({ studioId, pageSize: PAGE_MAX, pageToken });
      return { items: answer.hooks, next: answer.nextPageToken };
    });
    const rows = hooks.map((hook) => [
      h("code", {}, hook.id),
      hook.url,
      hook.events.map((e) => enumName(HookEvent, e, "HOOK_EVENT_")).join(", "),
      enumName(HookFailurePolicy, hook.failurePolicy, "HOOK_FAILURE_POLICY_"),
      duration(hook.timeout) || "2s",
      time(hook.updateTime),
    ]);
    const deliveries = h("div");
    body.replaceChildren(
      section("Hooks", table("hooks", ["hook", "URL", "events", "on failure", "timeout", "updated"], rows)),
      section("Deliveries", stateFilter((state) => void renderDeliveries(ctx, studioId, state, deliveries)), deliveries),
    );
  } catch (err) {
    notice(body, describeError(err), "error");
  }
}

function stateFilter(onpick: (state: HookDeliveryState) => void): HTMLElement {
  const states = [HookDeliveryState.UNSPECIFIED, HookDeliveryState.PENDING, HookDeliveryState.DELIVERED, HookDeliveryState.DEAD];
  const select = h(
    "select",
    { name: "state", "data-testid": "delivery-state" },
    states.map((s) => h("option", { value: String(s) }, s === HookDeliveryState.UNSPECIFIED ? "every state" : stateName(s))),
  );
  select.addEventListener("change", () => onpick(Number(select.value) as HookDeliveryState));
  queueMicrotask(() => onpick(HookDeliveryState.UNSPECIFIED));
  return field("State", select);
}

function stateName(state: HookDeliveryState): string {
  return enumName(HookDeliveryState, state, "HOOK_DELIVERY_STATE_");
}

async function renderDeliveries(ctx: PageContext, studioId: string, state: HookDeliveryState, target: HTMLElement): Promise<void> {
  const message = h("div");
  try {
    const answer = await ctx.admin.listHookDeliveries({ studioId, state, pageSize: DELIVERIES_SHOWN });
    const rows = answer.deliveries.map((d) => [
      h("code", {}, d.id),
      h("code", {}, d.hookId),
      h("code", {}, d.requestId),
      stateName(d.state),
      String(d.attempts),
      d.lastError,
      time(d.deliverTime) || time(d.nextAttemptTime),
      button(
        "Redeliver",
        async () => {
          try {
            await ctx.admin.redeliverHook({ studioId, deliveryId: d.id });
            await renderDeliveries(ctx, studioId, state, target);
          } catch (err) {
            notice(message, describeError(err), "error");
          }
        },
        { "data-testid": `redeliver-${d.id}` },
      ),
    ]);
    const more = answer.nextPageToken ? h("p", { class: "hint" }, `The newest ${DELIVERIES_SHOWN} shown.`) : null;
    const list = table("deliveries", ["delivery", "hook", "request", "state", "attempts", "last error", "delivered / next attempt", ""], rows);
    target.replaceChildren(message, list, ...(more ? [more] : []));
  } catch (err) {
    notice(target, describeError(err), "error");
  }
}
