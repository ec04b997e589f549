// TLS and mTLS: option handling, and real handshakes with an HTTP/2 TLS server of the test's own.
// The handshakes go to a server on 127.0.0.1 that answers every gRPC call UNIMPLEMENTED (so a
// call that gets that answer went through TLS; one that cannot connect fails UNAVAILABLE). The
// same cases against a real City serving TLS are in city-tls.test.ts.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, DowncityError, type TlsOptions, UserClient } from "@downcity/client";

const MAKE_PKI = resolve(dirname(fileURLToPath(import.meta.url)), "../../testdata/make-test-pki");
let pki: string;
const servers: Http2SecureServer[] = [];
let tlsAddr: string;
let mtlsAddr: string;

async function listen(requireClient: boolean): Promise<string> {
  const server = createSecureServer({
    cert: readFileSync(join(pki, "server.pem")),
    key: readFileSync(join(pki, "server.key")),
    ...(requireClient ? { ca: readFileSync(join(pki, "ca.pem")), requestCert: true, rejectUnauthorized: true } : {}),
  });
  server.on("stream", (stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, { endStream: true });
  });
  servers.push(server);
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  pki = mkdtempSync(join(tmpdir(), "downcity-ts-pki-"));
  execFileSync(MAKE_PKI, [pki]);
  tlsAddr = await listen(false);
  mtlsAddr = await listen(true);
});

after(() => {
  for (const server of servers) server.close();
  rmSync(pki, { recursive: true, force: true });
});

/** The code of one call: Unimplemented once TLS is through, Unavailable if not. */
async function reach(baseUrl: string, tls?: TlsOptions): Promise<Code> {
  const client = new UserClient({ baseUrl, studioId: "studio", userToken: "dcu_token", tls, timeoutMs: 10_000 });
  try {
    await client.ai.models();
    assert.fail("the call succeeded");
  } catch (err) {
    assert.ok(err instanceof DowncityError, `not a DowncityError: ${err}`);
    return err.code;
  } finally {
    client.close();
  }
}

const file = (name: string) => join(pki, name);

test("TLS with a private CA: file, PEM text or Buffer, server name", async () => {
  assert.equal(await reach(`https://${tlsAddr}`, { ca: file("ca.pem") }), Code.Unimplemented);
  assert.equal(await reach(tlsAddr, { ca: readFileSync(file("ca.pem")) }), Code.Unimplemented);
  assert.equal(await reach(tlsAddr, { ca: readFileSync(file("ca.pem"), "utf8"), serverName: "city.test" }), Code.Unimplemented);
});

test("what must not connect: another CA, another name, the system roots, plaintext", async () => {
  assert.equal(await reach(tlsAddr, { ca: file("other-ca.pem") }), Code.Unavailable);
  assert.equal(await reach(tlsAddr, { ca: file("ca.pem"), serverName: "other.test" }), Code.Unavailable);
  assert.equal(await reach(`https://${tlsAddr}`), Code.Unavailable);
  assert.notEqual(await reach(`http://${tlsAddr}`), Code.Unimplemented);
});

test("mTLS: a client certificate from the CA the server trusts, and only that", async () => {
  const mtls = { ca: file("ca.pem"), cert: file("client.pem"), key: file("client.key") };
  assert.equal(await reach(`https://${mtlsAddr}`, mtls), Code.Unimplemented);
  assert.equal(await reach(mtlsAddr, { ca: file("ca.pem") }), Code.Unavailable);
  // A certificate the server refuses: under TLS 1.3 the client may have finished its side of
  // the handshake already, and Node then reports the refusal as a cancelled stream.
  const other = { ca: file("ca.pem"), cert: file("other-client.pem"), key: file("other-client.key") };
  assert.ok([Code.Unavailable, Code.Canceled].includes(await reach(mtlsAddr, other)));
});

test("bad TLS options throw at construction", () => {
  const make = (baseUrl: string, tls?: TlsOptions) => new UserClient({ baseUrl, studioId: "s", userToken: "t", tls });
  assert.throws(() => make("http://127.0.0.1:1", {}), /is plaintext \(http:\/\/\) but tls was given/);
  assert.throws(() => make("ftp://127.0.0.1:1"), /expected http:\/\/, https:\/\/ or host:port/);
  assert.throws(() => make("127.0.0.1:1", { cert: "-----BEGIN CERTIFICATE-----" }), /needs its key/);
  assert.throws(() => make("127.0.0.1:1", { key: "-----BEGIN PRIVATE KEY-----" }), /needs its key/);
  assert.throws(() => make("127.0.0.1:1", { ca: "/nonexistent/ca.pem" }), /ENOENT/);
});
