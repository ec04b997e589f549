// A real City for the test: `$DOWNCITY_BIN serve --dev` on port 0 with its own data dir.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";

export interface City {
  baseUrl: string;
  adminKey: string;
  studioId: string;
  userToken: string;
  stop(): Promise<void>;
}

function devEnv(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  if (!existsSync(path)) return env;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  return env;
}

export async function startCity(): Promise<City> {
  const bin = process.env.DOWNCITY_BIN;
  if (!bin) throw new Error("set DOWNCITY_BIN to a built City (cargo build --bin downcity)");
  const dataDir = mkdtempSync(join(tmpdir(), "downcity-console-city-"));
  const log = openSync(join(dataDir, "city.log"), "w");
  const child = spawn(bin, ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", log],
  });
  const exited = once(child, "exit");
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  // City prints to stdout once it listens (dev.env is written by then).
  for await (const _chunk of child.stdout) {
    const env = devEnv(join(dataDir, "dev.env"));
    if (env.DOWNCITY_ADDR && env.DOWNCITY_USER_TOKEN) {
      child.stdout.resume();
      return {
        baseUrl: `http://${env.DOWNCITY_ADDR}`,
        adminKey: env.DOWNCITY_ADMIN_KEY,
        studioId: env.DOWNCITY_STUDIO_ID,
        userToken: env.DOWNCITY_USER_TOKEN,
        stop,
      };
    }
  }
  await stop();
  throw new Error(`City did not start: ${readFileSync(join(dataDir, "city.log"), "utf8")}`);
}
