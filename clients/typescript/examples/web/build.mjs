// Bundles the example page for browsers: examples/web/main.ts → <outdir>/app.js, with
// index.html beside it. `node examples/web/build.mjs [outdir]` (default examples/web/dist).
// The package's own dist/ must be built first (`npm run build`).
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

/** Builds the page into `outdir`; returns esbuild's metafile (what went into the bundle). */
export async function buildPage(outdir) {
  mkdirSync(outdir, { recursive: true });
  const result = await build({
    entryPoints: [join(here, "main.ts")],
    outfile: join(outdir, "app.js"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    metafile: true,
    logLevel: "warning",
  });
  copyFileSync(join(here, "index.html"), join(outdir, "index.html"));
  return result.metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outdir = resolve(process.argv[2] ?? join(here, "dist"));
  await buildPage(outdir);
  console.log(`built ${outdir}/index.html and app.js`);
}
