// The client over TLS and mTLS against a real City (serve --tls-cert/--tls-key/--tls-client-ca),
// with a throwaway PKI from clients/testdata/make-test-pki.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Code, DowncityError, type TlsOptions, UserClient } from "@downcity/client";
import { type City, startCity } from "./city.js";

const MAKE_PKI = resolve(dirname(fileURLToPath(import.meta.url)), "../../testdata/make-test-pki");
let pki: string;
let next: string; // a second PKI, for rotation
let tlsCity: City & { dataDir: string };
let mtlsCity: City & { dataDir: string };
const file = (name: string) => join(pki, name);

function withServerPair(extra: string[] = []) {
  return (dataDir: string) => {
    copyFileSync(file("server.pem"), join(dataDir, "tls.crt"));
    copyFileSync(file("server.key"), join(dataDir, "tls.key"));
    return ["--tls-cert", join(dataDir, "tls.crt"), "--tls-key", join(dataDir, "tls.key"), ...extra];
  };
}

before(async () => {
  pki = mkdtempSync(join(tmpdir(), "downcity-ts-pki-"));
  next = mkdtempSync(join(tmpdir(), "downcity-ts-pki-next-"));
  execFileSync(MAKE_PKI, [pki]);
  execFileSync(MAKE_PKI, [next]);
  const fast = { DOWNCITY_TLS__RELOAD_INTERVAL_MS: "100" };
  tlsCity = await startCity(withServerPair(), fast);
  mtlsCity = await startCity(withServerPair(["--tls-client-ca", file("ca.pem")]), fast);
});

after(async () => {
  await tlsCity?.stop();
  await mtlsCity?.stop();
  rmSync(pki, { recursive: true, force: true });
  rmSync(next, { recursive: true, force: true });
});

function client(city: City, tls?: TlsOptions, baseUrl = city.baseUrl): UserClient {
  return new UserClient({ baseUrl, studioId: city.studioId, userToken: city.userToken, tls, timeoutMs: 10_000 });
}

/** The code a Text call fails with, or "ok". */
async function call(city: City, tls?: TlsOptions, baseUrl?: string): Promise<Code | "ok"> {
  const c = client(city, tls, baseUrl);
  try {
    assert.equal((await c.ai.text({ messages: "hi" })).text, "Echo: hi");
    return "ok";
  } catch (err) {
    assert.ok(err instanceof DowncityError, `not a DowncityError: ${err}`);
    return err.code;
  } finally {
    c.close();
  }
}

test("dev.env names an https:// address", () => {
  assert.match(tlsCity.env.DOWNCITY_ADDR, /^https:\/\/127\.0\.0\.1:\d+$/);
});

test("text, a stream to the end and a cancelled stream over TLS", async () => {
  const c = client(tlsCity, { ca: file("ca.pem") });
  try {
    assert.equal((await c.ai.text({ messages: "over TLS" })).text, "Echo: over TLS");
    const stream = c.ai.stream({ messages: "one two three" });
    const deltas: string[] = [];
    for await (const piece of stream) deltas.push(piece.delta);
    assert.equal(deltas.join(""), "Echo: one two three");
    const long = c.ai.stream({ messages: "word ".repeat(200) });
    let got = 0;
    for await (const _ of long) if (++got === 2) break; // leaving the loop cancels the call
    assert.equal(got, 2);
    assert.equal(long.usage, undefined);
  } finally {
    c.close();
  }
  assert.equal(await call(tlsCity, { ca: file("ca.pem"), serverName: "city.test" }), "ok");
});

test("City refuses plaintext and a client trusting another CA", async () => {
  const plain = tlsCity.baseUrl.replace("https://", "http://");
  assert.notEqual(await call(tlsCity, undefined, plain), "ok");
  assert.equal(await call(tlsCity, { ca: file("other-ca.pem") }), Code.Unavailable);
});

test("mTLS: only a client certificate from the client CA", async () => {
  assert.equal(await call(mtlsCity, { ca: file("ca.pem"), cert: file("client.pem"), key: file("client.key") }), "ok");
  // Under TLS 1.3 Node may report the refusal as a cancelled stream (see tls.test.ts).
  const refused = [Code.Unavailable, Code.Canceled];
  assert.ok(refused.includes((await call(mtlsCity, { ca: file("ca.pem") })) as Code));
  const other = { ca: file("ca.pem"), cert: file("other-client.pem"), key: file("other-client.key") };
  assert.ok(refused.includes((await call(mtlsCity, other)) as Code));
});

test("a rotated certificate is served to new connections without a restart", async () => {
  for (const [name, source] of [["tls.key", "server.key"], ["tls.crt", "server.pem"]]) {
    copyFileSync(join(next, source), join(tlsCity.dataDir, `${name}.new`));
    renameSync(join(tlsCity.dataDir, `${name}.new`), join(tlsCity.dataDir, name));
  }
  const deadline = Date.now() + 10_000;
  while ((await call(tlsCity, { ca: join(next, "ca.pem") })) !== "ok") {
    assert.ok(Date.now() < deadline, "the new certificate is not served after 10 s");
    await sleep(50);
  }
  assert.equal(await call(tlsCity, { ca: file("ca.pem") }), Code.Unavailable);
});
