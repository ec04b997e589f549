// A real City for the tests: `downcity serve --dev` on port 0 with its own data dir.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const KEYS = ["DOWNCITY_ADDR", "DOWNCITY_ADMIN_KEY", "DOWNCITY_STUDIO_ID", "DOWNCITY_USER_TOKEN"];

export interface City {
  env: Record<string, string>;
  baseUrl: string;
  adminKey: string;
  studioId: string;
  userToken: string;
  stop(): Promise<void>;
}

/** $DOWNCITY_BIN, else the newest of target/{release,debug}/downcity. */
function cityBinary(): string {
  if (process.env.DOWNCITY_BIN) return process.env.DOWNCITY_BIN;
  const found = ["target/release/downcity", "target/debug/downcity"]
    .map((p) => join(REPO, p))
    .filter((p) => existsSync(p))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (found.length === 0) throw new Error("no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)");
  return found[0];
}

function readDevEnv(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (!existsSync(path)) return env;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) env[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return env;
}

/** Starts City; `prepare` may put files into the data dir and return extra flags. */
export async function startCity(
  prepare: (dataDir: string) => string[] = () => [],
  env: Record<string, string> = {},
): Promise<City & { dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), "downcity-ts-"));
  const log = openSync(join(dataDir, "city.log"), "w");
  const child: ChildProcess = spawn(
    cityBinary(),
    ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...prepare(dataDir)],
    { stdio: ["ignore", log, log], env: { ...process.env, ...env } },
  );
  let exited = false;
  const done = new Promise<void>((ok) => child.once("exit", () => ((exited = true), ok())));
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await done;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const env = readDevEnv(join(dataDir, "dev.env"));
    if (KEYS.every((k) => env[k])) {
      return {
        env,
        baseUrl: env.DOWNCITY_ADDR.includes("://") ? env.DOWNCITY_ADDR : `http://${env.DOWNCITY_ADDR}`,
        adminKey: env.DOWNCITY_ADMIN_KEY,
        studioId: env.DOWNCITY_STUDIO_ID,
        userToken: env.DOWNCITY_USER_TOKEN,
        stop,
        dataDir,
      };
    }
    if (exited || Date.now() > deadline) {
      const out = readFileSync(join(dataDir, "city.log"), "utf8");
      await stop();
      throw new Error(`City did not start:\n${out}`);
    }
    await sleep(50);
  }
}
