// Studio keys (operator only) and user tokens: issue (the secret is shown
// once), list, revoke.
import { allPages, describeError, PAGE_MAX } from "../api.js";
import { time } from "../format.js";
import type { PageContext } from "../page.js";
import { studioIds, studioPicker } from "../studio-picker.js";
import { button, field, h, input, notice, secretBox, section, table } from "../ui.js";

export async function keysPage(ctx: PageContext): Promise<HTMLElement> {
  const ids = await studioIds(ctx);
  const body = h("div");
  return h("div", {}, studioPicker(ids, (studioId) => void renderStudio(ctx, studioId, body)), body);
}

async function renderStudio(ctx: PageContext, studioId: string, body: HTMLElement): Promise<void> {
  const message = h("div");
  const again = () => void renderStudio(ctx, studioId, body);
  try {
    const parts: HTMLElement[] = [message];
    if (ctx.operator) parts.push(await studioKeys(ctx, studioId, message, again));
    parts.push(await userTokens(ctx, studioId, message, again));
    body.replaceChildren(...parts);
  } catch (err) {
    notice(body, describeError(err), "error");
  }
}

async function studioKeys(ctx: PageContext, studioId: string, message: HTMLElement, again: () => void): Promise<HTMLElement> {
  const keys = await allPages(async (pageToken) => {
    const answer = await ctx.admin.listStudioKeys({ studioId, pageSize: PAGE_MAX, pageToken });
    return { items: answer.keys, next: answer.nextPageToken };
  });
  const rows = keys.map((key) => [
    key.id,
    key.displayName,
    time(key.createTime),
    time(key.revokeTime) || (ctx.operator ? revokeButton(`revoke-key-${key.id}`, message, again, () => ctx.admin.revokeStudioKey({ studioId, keyId: key.id })) : ""),
  ]);
  const name = input("name", { placeholder: "backend" });
  const form = h("form", { class: "inline", "data-testid": "create-key" }, field("Name", name), h("button", { type: "submit" }, "Create studio key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await ctx.admin.createStudioKey({ studioId, displayName: name.value });
      message.replaceChildren(secretBox(`Studio key ${answer.key?.id}`, answer.secret));
      form.closest("section")?.replaceWith(await studioKeys(ctx, studioId, message, again));
    } catch (err) {
      notice(message, describeError(err), "error");
    }
  });
  return section("Studio keys", form, table("studio-keys", ["key", "name", "created", "revoked"], rows));
}

async function userTokens(ctx: PageContext, studioId: string, message: HTMLElement, again: () => void): Promise<HTMLElement> {
  const tokens = await allPages(async (pageToken) => {
    const answer = await ctx.admin.listUserTokens({ studioId, pageSize: PAGE_MAX, pageToken });
    return { items: answer.tokens, next: answer.nextPageToken };
  });
  const rows = tokens.map((token) => [
    token.id,
    token.userId,
    time(token.createTime),
    time(token.expireTime),
    time(token.revokeTime) || revokeButton(`revoke-token-${token.id}`, message, again, () => ctx.admin.revokeUserToken({ studioId, tokenId: token.id })),
  ]);
  const user = input("user", { required: true, placeholder: "user-42" });
  const hours = input("ttl", { type: "number", min: "0", placeholder: "never expires" });
  const form = h("form", { class: "inline", "data-testid": "issue-token" }, field("User id", user), field("Expires in (hours)", hours), h("button", { type: "submit" }, "Issue user token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ttl = hours.value ? { seconds: BigInt(Number(hours.value) * 3600) } : undefined;
    try {
      const answer = await ctx.admin.issueUserToken({ studioId, userId: user.value, ttl });
      message.replaceChildren(secretBox(`User token for ${answer.token?.userId}`, answer.secret));
      form.closest("section")?.replaceWith(await userTokens(ctx, studioId, message, again));
    } catch (err) {
      notice(message, describeError(err), "error");
    }
  });
  return section("User tokens", form, table("user-tokens", ["token", "user", "created", "expires", "revoked"], rows));
}

function revokeButton(testid: string, message: HTMLElement, again: () => void, revoke: () => Promise<unknown>): HTMLElement {
  return button(
    "Revoke",
    async () => {
      try {
        await revoke();
        again();
      } catch (err) {
        notice(message, describeError(err), "error");
      }
    },
    { "data-testid": testid },
  );
}
