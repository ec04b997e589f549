// A real City for the SDK tests: `downcity serve --dev` on port 0 with its own
// data dir; the admin CLI (the same binary) sets up studios, limits and models
// and reads the usage rows.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import OpenAI from 'openai';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

function cityBinary() {
  const path = process.env.DOWNCITY_BIN || join(REPO, 'target/debug/downcity');
  if (!existsSync(path)) {
    throw new Error('no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)');
  }
  return path;
}

function readDevEnv(path) {
  const env = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return env;
}

export class City {
  static async start() {
    const dataDir = mkdtempSync(join(tmpdir(), 'downcity-openai-node-'));
    const log = openSync(join(dataDir, 'city.log'), 'w');
    const proc = spawn(
      cityBinary(),
      ['serve', '--dev', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
      { stdio: ['ignore', log, log] },
    );
    const devEnv = join(dataDir, 'dev.env');
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) {
        throw new Error(`City exited: ${readFileSync(join(dataDir, 'city.log'), 'utf8')}`);
      }
      if (existsSync(devEnv)) {
        const env = readDevEnv(devEnv);
        if (env.DOWNCITY_ADDR && env.DOWNCITY_ADMIN_KEY) return new City(proc, dataDir, env);
      }
      if (Date.now() > deadline) throw new Error('City wrote no dev.env within 60 s');
      await delay(50);
    }
  }

  constructor(proc, dataDir, env) {
    this.proc = proc;
    this.dataDir = dataDir;
    this.addr = env.DOWNCITY_ADDR;
    this.adminKey = env.DOWNCITY_ADMIN_KEY;
    this.baseURL = `http://${this.addr}/v1`;
    this.studios = 0;
  }

  /** Runs `downcity admin ... --json` and returns its JSON output. */
  admin(...args) {
    const out = execFileSync(cityBinary(), ['admin', ...args, '--json'], {
      env: { ...process.env, DOWNCITY_ADDR: this.addr, DOWNCITY_ADMIN_KEY: this.adminKey },
      encoding: 'utf8',
    });
    return out.trim() ? JSON.parse(out) : null;
  }

  /** A fresh studio with one user: [studio id, user token]. */
  newUser() {
    const studio = `sdk-node-${this.studios++}`;
    this.admin('studios', 'create', '--id', studio);
    return [studio, this.admin('tokens', 'issue', studio, 'user-1').secret];
  }

  /** No retries: a refused call must surface at once, not be retried. */
  client(token) {
    return new OpenAI({ apiKey: token, baseURL: this.baseURL, maxRetries: 0 });
  }

  usageRows(studio) {
    const listed = this.admin('usage', 'list', '--studio', studio, '--all');
    return (Array.isArray(listed) ? listed : [listed]).flatMap((page) => page.records ?? []);
  }

  async stop() {
    const exited = new Promise((done) => this.proc.once('exit', done));
    this.proc.kill('SIGTERM');
    await exited;
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
