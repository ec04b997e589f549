// The console in a real browser (Debian's chromium through playwright-core)
// against a real City: sign-in, the overview's numbers, suspend from the
// page, a token issued on the page, a studio key's view. Screenshots of
// every page go to a temp dir (printed; kept).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { startCity, type City } from "./city.js";
import { admin, reason, text } from "./rpc.js";

const CALLS = 3;
let city: City;
let browser: Browser;
const shots = mkdtempSync(join(tmpdir(), "downcity-console-shots-"));

before(async () => {
  city = await startCity();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    // Root in CI and containers: chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  console.log(`screenshots: ${shots}`);
});

after(async () => {
  await browser?.close();
  await city?.stop();
});

/** A new tab with no session, which fails the test on any page error or CSP report. */
async function newPage(): Promise<Page> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
  page.on("request", (req) => {
    if (!req.url().startsWith(city.baseUrl) && !req.url().startsWith("blob:")) problems.push(`third-party request: ${req.url()}`);
  });
  (page as Page & { problems: string[] }).problems = problems;
  return page;
}

function problems(page: Page): string[] {
  return (page as Page & { problems: string[] }).problems;
}

async function signIn(page: Page, key: string, studioId = ""): Promise<void> {
  await page.goto(`${city.baseUrl}/console`);
  await page.fill("input[name=key]", key);
  await page.fill("input[name=studio]", studioId);
  await page.click("button[type=submit]");
  await page.waitForSelector("main[data-ready=overview]");
}

async function open(page: Page, route: string): Promise<void> {
  await page.click(`nav a[data-route=${route}]`);
  await page.waitForSelector(`main[data-ready=${route}]`);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const number = (s: string) => Number(s.replaceAll(",", ""));

test("the operator's overview shows what AggregateUsage sums for the calls made", async () => {
  for (let i = 0; i < CALLS; i++) await text(city.baseUrl, city.studioId, city.userToken, `call ${i}`);
  const page = await newPage();
  await signIn(page, city.adminKey);
  const since = new Date(Date.now() - 29 * 86_400_000);
  since.setUTCHours(0, 0, 0, 0);
  const answer = await admin(city.baseUrl, city.adminKey).aggregateUsage({ filter: { startTime: { seconds: BigInt(since.getTime() / 1000) } } });
  const sums = answer.rows[0];
  assert.equal(sums.calls, BigInt(CALLS));
  assert.equal(number(await page.textContent("[data-testid=total-calls]") ?? ""), Number(sums.calls));
  assert.equal(number(await page.textContent("[data-testid=total-errors]") ?? ""), Number(sums.failedCalls));
  assert.equal(number(await page.textContent("[data-testid=total-tokens]") ?? ""), Number(sums.inputTokens + sums.outputTokens));
  assert.equal(Math.round(number(await page.textContent("[data-testid=total-cost]") ?? "") * 1e6), Number(sums.costMicros));
  const top = await page.$$eval("[data-testid=top-studios] tbody tr", (rows) => rows.map((r) => (r as HTMLElement).innerText));
  assert.equal(top.length, 1);
  assert.match(top[0], new RegExp(`^${city.studioId}\\s+${CALLS}\\b`));
  assert.equal(await page.locator("figure.chart .uplot").count(), 8, "eight charts drawn");
  await shot(page, "overview");
  assert.deepEqual(problems(page), []);
});

test("suspending the demo studio on the page makes its calls fail with STUDIO_SUSPENDED", async () => {
  const page = await newPage();
  await signIn(page, city.adminKey);
  await open(page, "studios");
  await page.click(`[data-testid=suspend-${city.studioId}]`);
  await page.waitForSelector(`[data-testid=status-${city.studioId}]:text("suspended")`);
  await assert.rejects(text(city.baseUrl, city.studioId, city.userToken), (err) => reason(err) === "STUDIO_SUSPENDED");
  await page.waitForSelector("[data-testid=standing]");
  await shot(page, "studios");
  await page.click(`[data-testid=activate-${city.studioId}]`);
  await page.waitForSelector(`[data-testid=status-${city.studioId}]:text("active")`);
  await text(city.baseUrl, city.studioId, city.userToken);
  assert.deepEqual(problems(page), []);
});

test("a user token issued on the page works for a call, once shown", async () => {
  const page = await newPage();
  await signIn(page, city.adminKey);
  await open(page, "keys");
  await page.fill("[data-testid=issue-token] input[name=user]", "page-user");
  await page.click("[data-testid=issue-token] button[type=submit]");
  const secret = (await page.textContent("[data-testid=secret-value]")) ?? "";
  assert.match(secret, /^dcu_/);
  assert.ok(await text(city.baseUrl, city.studioId, secret));
  await page.waitForSelector("[data-testid=user-tokens] td:text('page-user')");
  await shot(page, "keys");
  await open(page, "catalog");
  assert.ok((await page.textContent("[data-testid=models]"))?.includes("mock-text"));
  await shot(page, "catalog");
  await open(page, "hooks");
  await shot(page, "hooks");
  // More records than one page of the table: the CSV still has them all.
  for (let i = 0; i < 55; i++) await text(city.baseUrl, city.studioId, secret, `more ${i}`);
  await open(page, "usage");
  await page.waitForSelector("[data-testid=next-page]");
  assert.equal(await page.locator("[data-testid=usage] tbody tr").count(), 50);
  const download = page.waitForEvent("download");
  await page.click("[data-testid=download-csv]");
  const csv = readFileSync(await (await download).path(), "utf8").trim().split("\r\n");
  const listed = await admin(city.baseUrl, city.adminKey).listUsageRecords({ pageSize: 1000 });
  assert.ok(listed.records.length > 50);
  assert.equal(csv.length, listed.records.length + 1, "a header and every record");
  assert.match(csv[0], /^request_id,studio_id,user_id,model_id/);
  await shot(page, "usage");
  assert.deepEqual(problems(page), []);
});

test("signed in with a studio key, only that studio is visible", async () => {
  const operator = admin(city.baseUrl, city.adminKey);
  await operator.createStudio({ studioId: "other", displayName: "Other" });
  const otherKey = await operator.createStudioKey({ studioId: "other", displayName: "other" });
  const otherToken = await admin(city.baseUrl, otherKey.secret).issueUserToken({ studioId: "other", userId: "o1" });
  await text(city.baseUrl, "other", otherToken.secret);
  const key = await operator.createStudioKey({ studioId: city.studioId, displayName: "console test" });
  const page = await newPage();
  await signIn(page, key.secret, city.studioId);
  const routes = await page.$$eval("nav a", (links) => links.map((a) => (a as HTMLElement).dataset.route));
  assert.ok(!routes.includes("catalog"), `no catalog for a studio key: ${routes}`);
  const top = await page.$$eval("[data-testid=top-studios] tbody tr td:first-child", (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(top, [city.studioId]);
  await shot(page, "overview-studio-key");
  await open(page, "studios");
  const studios = await page.$$eval("[data-testid=studios] tbody tr td:first-child", (cells) => cells.map((c) => c.textContent));
  assert.deepEqual(studios, [city.studioId]);
  await open(page, "usage");
  const users = await page.$$eval("[data-testid=usage] tbody tr td:nth-child(2)", (cells) => [...new Set(cells.map((c) => c.textContent))]);
  assert.deepEqual(users, [city.studioId]);
  assert.deepEqual(problems(page), []);
  // The operator sees both.
  const all = await newPage();
  await signIn(all, city.adminKey);
  await all.waitForSelector("[data-testid=top-studios] td:text('other')");
});
