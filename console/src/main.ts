// The City console: sign-in, then one page per hash route (#/overview, …).
import "./style.css";
import "uplot/dist/uPlot.min.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { adminClient, clearSession, describeError, loadSession, saveSession, type Session } from "./api.js";
import { h, field, input, notice } from "./ui.js";
import type { Page, PageContext } from "./page.js";
import { overviewPage } from "./pages/overview.js";
import { studiosPage } from "./pages/studios.js";
import { keysPage } from "./pages/keys.js";
import { catalogPage } from "./pages/catalog.js";
import { usagePage } from "./pages/usage.js";
import { hooksPage } from "./pages/hooks.js";

interface Route {
  path: string;
  title: string;
  page: Page;
  /** Only the operator's admin key may use it (a studio key never sees it). */
  operatorOnly: boolean;
}

const ROUTES: Route[] = [
  { path: "overview", title: "Overview", page: overviewPage, operatorOnly: false },
  { path: "studios", title: "Studios", page: studiosPage, operatorOnly: false },
  { path: "keys", title: "Keys and tokens", page: keysPage, operatorOnly: false },
  { path: "catalog", title: "Catalog", page: catalogPage, operatorOnly: true },
  { path: "usage", title: "Usage", page: usagePage, operatorOnly: false },
  { path: "hooks", title: "Hooks", page: hooksPage, operatorOnly: false },
];

const root = document.getElementById("app") as HTMLElement;

function start(): void {
  const session = loadSession();
  if (session) showConsole(session);
  else showSignIn();
}

function showSignIn(): void {
  const key = input("key", { type: "password", autocomplete: "off", required: true, placeholder: "dca_… or dck_…" });
  const studio = input("studio", { placeholder: "for a studio key (dck_…)" });
  const message = h("div");
  const form = h(
    "form",
    { class: "signin", "data-testid": "signin" },
    h("h1", {}, "City console"),
    field("Admin key or studio key", key),
    field("Studio id", studio),
    h("button", { type: "submit" }, "Sign in"),
    message,
    h("p", { class: "hint" }, "The key stays in this tab only (sessionStorage) and goes only to this City."),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const session: Session = { key: key.value.trim(), studioId: studio.value.trim() || null };
    void signIn(session, message);
  });
  root.replaceChildren(form);
  key.focus();
}

/**
 * Checks the key with a call only the operator may make, else (a studio
 * key) with its studio; then keeps it.
 */
async function signIn(typed: Session, message: HTMLElement): Promise<void> {
  const admin = adminClient(typed.key);
  let session: Session;
  try {
    await admin.listStudios({ pageSize: 1 });
    session = { key: typed.key, studioId: null };
  } catch (err) {
    if (ConnectError.from(err).code !== Code.PermissionDenied) {
      notice(message, describeError(err), "error");
      return;
    }
    if (!typed.studioId) {
      notice(message, "A studio key needs its studio id.", "error");
      return;
    }
    try {
      await admin.getStudio({ studioId: typed.studioId });
      session = typed;
    } catch (err) {
      notice(message, describeError(err), "error");
      return;
    }
  }
  saveSession(session);
  showConsole(session);
}

function showConsole(session: Session): void {
  const operator = session.studioId === null;
  const routes = ROUTES.filter((route) => operator || !route.operatorOnly);
  const main = h("main", { id: "page" });
  const ctx: PageContext = { admin: adminClient(session.key), session, operator, refresh: () => render() };
  const nav = h(
    "nav",
    {},
    h("strong", {}, "City"),
    routes.map((route) => h("a", { href: `#/${route.path}`, "data-route": route.path }, route.title)),
    h("span", { class: "who", "data-testid": "who" }, operator ? "operator" : `studio ${session.studioId}`),
    h("button", { type: "button", onclick: signOut }, "Sign out"),
  );
  root.replaceChildren(nav, main);
  function render(): void {
    void renderRoute(routes, ctx, nav, main);
  }
  window.onhashchange = render;
  render();
}

let rendering = 0;

async function renderRoute(routes: Route[], ctx: PageContext, nav: HTMLElement, main: HTMLElement): Promise<void> {
  const path = location.hash.replace(/^#\/?/, "") || "overview";
  const route = routes.find((r) => r.path === path) ?? routes[0];
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.route === route.path);
  }
  document.title = `${route.title} · City console`;
  const mine = ++rendering;
  main.replaceChildren(h("p", { class: "loading" }, "Loading…"));
  main.removeAttribute("data-ready");
  let content: HTMLElement;
  try {
    content = await route.page(ctx);
  } catch (err) {
    content = h("div");
    notice(content, describeError(err), "error");
  }
  // A later navigation wins over a slow page.
  if (mine !== rendering) return;
  main.replaceChildren(h("h1", {}, route.title), content);
  main.setAttribute("data-ready", route.path);
}

function signOut(): void {
  clearSession();
  window.onhashchange = null;
  location.hash = "";
  showSignIn();
}

start();
