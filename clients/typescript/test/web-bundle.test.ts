// The browser entry bundles for browsers (esbuild, platform=browser) with no Node built-in;
// the Node entry, the control, does not.
import assert from "node:assert/strict";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function bundle(entry: string) {
  return build({
    entryPoints: [join(PACKAGE, entry)],
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
}

test("@downcity/client/web bundles for browsers without Node built-ins", async () => {
  const { metafile, outputFiles } = await bundle("dist/web.js");
  const inputs = Object.keys(metafile.inputs);
  const imports = Object.values(metafile.inputs).flatMap((input) => input.imports.map((i) => i.path));
  assert.deepEqual(
    imports.filter((path) => path.startsWith("node:") || /^(http2?|https|net|tls|fs|zlib)$/.test(path)),
    [],
  );
  assert.ok(inputs.some((path) => path.includes("@connectrpc/connect-web")), "not on connect-web");
  assert.ok(!inputs.some((path) => path.includes("connect-node")), "connect-node in the bundle");
  assert.ok(!outputFiles[0].text.includes("node:"), "a node: specifier in the bundle");
});

test("the Node entry does not bundle for browsers (the control)", async () => {
  await assert.rejects(bundle("dist/index.js"));
});
