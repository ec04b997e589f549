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
