// The README's example, run as written (it is plain JavaScript as well as TypeScript).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { type City, startCity } from "./city.js";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
let city: City;

before(async () => {
  city = await startCity();
});

after(async () => {
  await city?.stop();
});

test("README example", async () => {
  const readme = readFileSync(join(PACKAGE, "README.md"), "utf8");
  const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, "no ```ts block in README.md");
  assert.ok(example.trim().split("\n").length <= 5);
  // Inside the package, so `@downcity/client` resolves to this build.
  const file = join(PACKAGE, `.readme-example-${process.pid}.mjs`);
  writeFileSync(file, example);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      env: { ...process.env, ...city.env },
      timeout: 60_000,
    });
    assert.equal(stdout.split("\n")[0], "Echo: Hello, City");
  } finally {
    rmSync(file, { force: true });
  }
});

test("a process that cancels a stream exits at once (no timer outlives the call)", async () => {
  const script = `
import { UserClient } from "@downcity/client";
const client = new UserClient({ baseUrl: "http://" + process.env.DOWNCITY_ADDR, studioId: process.env.DOWNCITY_STUDIO_ID, userToken: process.env.DOWNCITY_USER_TOKEN });
for await (const piece of client.ai.stream({ messages: "one two three four" })) break;
await client.ai.text({ messages: "unary" });
client.close();
console.log("done");
`;
  const file = join(PACKAGE, `.readme-example-exit-${process.pid}.mjs`);
  writeFileSync(file, script);
  try {
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      env: { ...process.env, ...city.env },
      timeout: 30_000,
    });
    assert.equal(stdout.trim(), "done");
    assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
  } finally {
    rmSync(file, { force: true });
  }
});
