// The studio a page acts on: the operator picks one, a studio key has its own.
import { allPages, PAGE_MAX } from "./api.js";
import type { PageContext } from "./page.js";
import { field, h } from "./ui.js";

let picked = "";

/** The studio ids the caller may act on. */
export async function studioIds(ctx: PageContext): Promise<string[]> {
  if (!ctx.operator) return [ctx.session.studioId!];
  const studios = await allPages(async (pageToken) => {
    const answer = await ctx.admin.listStudios({ pageSize: PAGE_MAX, pageToken });
    return { items: answer.studios, next: answer.nextPageToken };
  });
  return studios.map((studio) => studio.id);
}

/**
 * A select of `ids` (plus `extra` options such as City-wide) that calls
 * `onpick` with the chosen studio, now and on each change.
 */
export function studioPicker(ids: string[], onpick: (studioId: string) => void, extra: [string, string][] = []): HTMLElement {
  const options: [string, string][] = [...extra, ...ids.map((id): [string, string] => [id, id])];
  if (!options.some(([value]) => value === picked)) picked = options[0]?.[0] ?? "";
  const select = h(
    "select",
    { name: "studio", "data-testid": "studio-picker" },
    options.map(([value, label]) => h("option", { value, selected: value === picked }, label)),
  );
  select.addEventListener("change", () => {
    picked = select.value;
    onpick(picked);
  });
  queueMicrotask(() => onpick(picked));
  return field("Studio", select);
}
