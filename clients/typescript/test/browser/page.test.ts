/// <reference lib="dom" />
// The example page (examples/web) in headless Chromium — Debian's, driven by playwright-core;
// nothing downloads a browser — served by a throwaway static server on one origin, City (the
// real binary) on another: the answer streams in piece by piece, the image renders, a revoked
// token shows TOKEN_REVOKED, and the same page from an origin City does not allow is refused.
// Each scenario leaves a screenshot in the test's temporary directory.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { AdminClient, Pathway } from "@downcity/client";
import { type Browser, chromium, type Page } from "playwright-core";
import { buildPage } from "../../examples/web/build.mjs";
import { type City, startCity } from "../city.js";

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const SLOW_MODEL = "mock-slow";
const PROMPT = "one two three four five six";

let city: City;
let admin: AdminClient;
let browser: Browser;
let allowed: Server;
let stranger: Server;
let workDir: string;

/** Serves the files of `dir` on 127.0.0.1 at a port of its own: an origin of its own. */
async function staticServer(dir: string): Promise<Server> {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript" };
  const server = createServer((req, res) => {
    const path = resolve(dir, `.${new URL(req.url ?? "/", "http://x").pathname}`);
    if (!path.startsWith(dir) || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(readFileSync(path));
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return server;
}

const originOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

before(async () => {
  workDir = mkdtempSync(join(tmpdir(), "downcity-web-"));
  const pageDir = join(workDir, "page");
  await buildPage(pageDir);
  [allowed, stranger] = await Promise.all([staticServer(pageDir), staticServer(pageDir)]);
  city = await startCity();
  admin = new AdminClient({ baseUrl: city.baseUrl, adminKey: city.adminKey });
  await admin.setAllowedOrigins(city.studioId, [originOf(allowed)]);
  // A pause before each piece, so the page has time to show each one as it comes.
  await admin.raw.upsertModel({
    model: {
      id: SLOW_MODEL, displayName: "Slow", providerId: "mock", upstreamModel: "echo", pathway: Pathway.TEXT,
      enabled: true, maxOutputTokens: 1000, maxInputTokens: 100000, options: { chunk_delay_ms: "60" },
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  admin?.close();
  allowed?.close();
  stranger?.close();
  await city?.stop();
  console.log(`screenshots in ${workDir}`);
});

/** The studio's usage rows so far. */
async function usageRows(): Promise<number> {
  const page = await admin.raw.listUsageRecords({ filter: { studioId: city.studioId }, pageSize: 1000 });
  return page.records.length;
}

/** Opens the page from `server` with `token`, asks, and waits for the page to finish. */
async function ask(server: Server, token: string, shot: string): Promise<Page> {
  const page = await browser.newPage();
  const settings = new URLSearchParams({ city: city.baseUrl, studio: city.studioId, token, model: SLOW_MODEL });
  await page.goto(`${originOf(server)}/index.html#${settings}`);
  await page.fill("#prompt", PROMPT);
  await page.click("button[type=submit]");
  await page.waitForSelector("body:not([data-state=idle]):not([data-state=streaming])", { timeout: 30_000 });
  await page.screenshot({ path: join(workDir, `${shot}.png`), fullPage: true });
  return page;
}

test("the answer streams in piece by piece, then the image renders", async () => {
  const page = await browser.newPage();
  const settings = new URLSearchParams({
    city: city.baseUrl, studio: city.studioId, token: city.userToken, model: SLOW_MODEL,
  });
  await page.goto(`${originOf(allowed)}/index.html#${settings}`);
  await page.fill("#prompt", PROMPT);
  await page.click("button[type=submit]");
  // Part of the answer is on the page while the stream is still open.
  await page.waitForFunction(
    () => document.body.dataset.state === "streaming" && document.querySelectorAll(".piece").length >= 2,
    undefined,
    { timeout: 30_000 },
  );
  const partial = await page.textContent("#answer");
  await page.waitForSelector("body[data-state=done]", { timeout: 30_000 });
  await page.screenshot({ path: join(workDir, "streamed.png"), fullPage: true });
  const answer = await page.textContent("#answer");
  assert.equal(answer, `Echo: ${PROMPT}`);
  assert.ok(partial && partial.length < answer.length, `not partial: ${partial}`);
  const times = await page.$$eval(".piece", (pieces) => pieces.map((p) => Number((p as HTMLElement).dataset.at)));
  assert.ok(times.length > 3, `${times.length} pieces`);
  assert.ok(times[times.length - 1] - times[0] > 100, `pieces arrived together: ${times}`);
  const size = await page.$eval("#picture", (img) => {
    const image = img as HTMLImageElement;
    return { hidden: image.hidden, complete: image.complete, width: image.naturalWidth };
  });
  assert.deepEqual({ hidden: size.hidden, complete: size.complete }, { hidden: false, complete: true });
  assert.ok(size.width > 0, "the image did not render");
  assert.equal(await page.textContent("#error"), "");
  await page.close();
});

test("a revoked token shows TOKEN_REVOKED on the page", async () => {
  const issued = await admin.issueUserToken(city.studioId, "revoked-user");
  await admin.raw.revokeUserToken({ studioId: city.studioId, tokenId: issued.token?.id ?? "" });
  const page = await ask(allowed, issued.secret, "revoked");
  assert.equal(await page.getAttribute("body", "data-state"), "error");
  assert.equal(await page.getAttribute("#error", "data-reason"), "TOKEN_REVOKED");
  assert.match((await page.textContent("#error")) ?? "", /TOKEN_REVOKED/);
  assert.equal(await page.textContent("#answer"), "");
  await page.close();
});

test("the same page from an origin City does not allow is refused", async () => {
  const rowsBefore = await usageRows();
  const page = await ask(stranger, city.userToken, "stranger");
  assert.equal(await page.getAttribute("body", "data-state"), "error");
  assert.equal(await page.textContent("#answer"), "");
  assert.notEqual(await page.textContent("#error"), "");
  // Refused at the preflight: the call never reached City, so no usage row came of it.
  assert.equal(await usageRows(), rowsBefore);
  await page.close();
});
