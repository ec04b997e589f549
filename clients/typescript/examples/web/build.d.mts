import type { Metafile } from "esbuild";

/** Builds the page into `outdir`; returns esbuild's metafile (what went into the bundle). */
export function buildPage(outdir: string): Promise<Metafile>;
