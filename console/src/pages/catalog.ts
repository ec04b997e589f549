// The catalog (operator only): providers with their key hints, models with
// prices and fallbacks, and the default model of each pathway.
import { ProviderKind, type Model } from "../../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { Pathway } from "../../../clients/typescript/src/gen/downcity/v1/common_pb.js";
import { allPages, describeError, PAGE_MAX } from "../api.js";
import { enumName, micros, time } from "../format.js";
import type { PageContext } from "../page.js";
import { field, h, notice, section, table } from "../ui.js";

export async function catalogPage(ctx: PageContext): Promise<HTMLElement> {
  const [providers, models] = await Promise.all([
    allPages(async (pageToken) => {
      const answer = await ctx.admin.listProviders({ pageSize: PAGE_MAX, pageToken });
      return { items: answer.providers, next: answer.nextPageToken };
    }),
    allPages(async (pageToken) => {
      const answer = await ctx.admin.listCatalogModels({ pageSize: PAGE_MAX, pageToken });
      return { items: answer.models, next: answer.nextPageToken };
    }),
  ]);
  const message = h("div");
  const providerRows = providers.map((p) => [
    p.id,
    enumName(ProviderKind, p.kind, "PROVIDER_KIND_"),
    p.baseUrl || "default",
    p.apiKeyHint ? h("code", {}, p.apiKeyHint) : "no key",
    time(p.updateTime),
  ]);
  const modelRows = models.map((m) => [
    m.id,
    m.displayName,
    `${m.providerId} / ${m.upstreamModel}`,
    pathwayName(m.pathway),
    m.enabled === false ? "disabled" : "enabled",
    prices(m),
    m.fallbackModelIds.join(" → ") || "none",
  ]);
  return h(
    "div",
    {},
    message,
    section("Defaults per pathway", defaults(ctx, models, message)),
    section("Providers", table("providers", ["provider", "kind", "base URL", "API key", "updated"], providerRows)),
    section("Models", table("models", ["model", "name", "provider / upstream", "pathway", "state", "prices", "fallbacks"], modelRows)),
  );
}

function pathwayName(pathway: Pathway): string {
  return enumName(Pathway, pathway, "PATHWAY_");
}

/** Prices in units: per million input and output tokens, or per image. */
function prices(m: Model): string {
  if (m.pathway === Pathway.IMAGE) return `${micros(m.microsPerImage)} per image`;
  return `${micros(m.inputMicrosPerMtok)} in / ${micros(m.outputMicrosPerMtok)} out per 1M tokens`;
}

/** One select per pathway; choosing a model makes it that pathway's default. */
function defaults(ctx: PageContext, models: Model[], message: HTMLElement): HTMLElement {
  const pathways = [Pathway.TEXT, Pathway.IMAGE];
  return h(
    "div",
    { class: "inline", "data-testid": "defaults" },
    pathways.map((pathway) => {
      const choices = models.filter((m) => m.pathway === pathway);
      const select = h(
        "select",
        { name: pathwayName(pathway) },
        choices.map((m) => h("option", { value: m.id, selected: m.isDefault }, m.id)),
      );
      select.addEventListener("change", async () => {
        try {
          await ctx.admin.setDefaultModel({ pathway, modelId: select.value });
          notice(message, `${select.value} is now the default ${pathwayName(pathway)} model.`, "ok");
        } catch (err) {
          notice(message, describeError(err), "error");
        }
      });
      return field(pathwayName(pathway), select);
    }),
  );
}
