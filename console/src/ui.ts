// A few DOM helpers: no framework, no inline script or style (the CSP has
// neither), only elements built here.
type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | ((event: Event) => void)>;

/** An element with attributes (`on…` ones are listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else if (value !== false) el.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** A table of `rows` under `headers`; `testid` names it for tests. */
export function table(testid: string, headers: string[], rows: Child[][]): HTMLTableElement {
  return h(
    "table",
    { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", {}, name)))),
    h(
      "tbody",
      {},
      rows.length === 0
        ? h("tr", {}, h("td", { colspan: String(headers.length), class: "empty" }, "none"))
        : rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell)))),
    ),
  );
}

export function button(label: string, onclick: () => void, attrs: Attrs = {}): HTMLButtonElement {
  return h("button", { type: "button", ...attrs, onclick }, label);
}

/** A section with a heading. */
export function section(title: string, ...children: (Child | Child[])[]): HTMLElement {
  return h("section", {}, h("h2", {}, title), ...children);
}

/** Where messages for the user go: errors from City, and confirmations. */
export function notice(el: HTMLElement, text: string, kind: "error" | "ok"): void {
  el.replaceChildren(h("p", { class: `notice ${kind}`, role: "status", "data-testid": `notice-${kind}` }, text));
}

/** A secret shown once, with a warning that it will not be shown again. */
export function secretBox(label: string, secret: string): HTMLElement {
  return h(
    "div",
    { class: "secret", "data-testid": "secret" },
    h("p", {}, `${label} — shown once; copy it now, City keeps only its hash:`),
    h("code", { "data-testid": "secret-value" }, secret),
  );
}

/** A horizontal bar: used, then reserved, out of a limit's value. */
export function standingBar(used: number, reserved: number, value: number): HTMLElement {
  const share = (n: number) => `${Math.min(100, value > 0 ? (n / value) * 100 : 0).toFixed(1)}%`;
  const usedEl = h("span", { class: "used" });
  const reservedEl = h("span", { class: "reserved" });
  // CSSOM (not a style attribute), which the CSP allows.
  usedEl.style.width = share(used);
  reservedEl.style.width = share(reserved);
  return h("div", { class: "bar", role: "img", "aria-label": `${used} used, ${reserved} reserved of ${value}` }, usedEl, reservedEl);
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement): HTMLLabelElement {
  return h("label", {}, h("span", {}, label), input);
}

export function input(name: string, attrs: Attrs = {}): HTMLInputElement {
  return h("input", { name, ...attrs });
}
