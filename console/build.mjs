// Builds dist/ (index.html, app.js, app.css) from src/: one bundle, no
// source maps, stable output (dist/ is committed and embedded in City;
// scripts/test rebuilds it and fails on a difference).
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

await build({
  entryPoints: { app: join(here, "src/main.ts") },
  outdir: dist,
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
  // The generated code under clients/typescript imports @bufbuild/protobuf:
  // an alias is resolved from absWorkingDir, so always this project's copy,
  // whatever is installed beside that code.
  absWorkingDir: here,
  alias: { "@bufbuild/protobuf": "@bufbuild/protobuf" },
});
copyFileSync(join(here, "src/index.html"), join(dist, "index.html"));
