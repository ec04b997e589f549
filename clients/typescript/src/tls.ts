import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";

/** A PEM: its contents (a Buffer, or a string starting with "-----BEGIN"), or a file path. */
export type Pem = string | Buffer;

/** TLS to City beyond the system roots. */
export interface TlsOptions {
  /** The CA that signed City's certificate, instead of the system roots. */
  ca?: Pem;
  /** A client certificate for mTLS (a City with --tls-client-ca accepts only those from that CA). */
  cert?: Pem;
  /** The client certificate's private key. */
  key?: Pem;
  /** The name City's certificate carries, when it is not the host of baseUrl. */
  serverName?: string;
}

/** The base URL to connect to and the HTTP/2 session options for TLS (none for plaintext). */
export function tlsSessionOptions(
  baseUrl: string,
  tls: TlsOptions | undefined,
): { baseUrl: string; sessionOptions: SecureClientSessionOptions | undefined } {
  const scheme = /^([a-z]+):\/\//i.exec(baseUrl)?.[1]?.toLowerCase();
  if (scheme !== undefined && scheme !== "http" && scheme !== "https") {
    throw new TypeError(`baseUrl ${baseUrl}: expected http://, https:// or host:port`);
  }
  if (scheme === "http" && tls) {
    throw new TypeError(`baseUrl ${baseUrl} is plaintext (http://) but tls was given: use https:// or host:port`);
  }
  const url = scheme ? baseUrl : `${tls ? "https" : "http"}://${baseUrl}`;
  if (!url.toLowerCase().startsWith("https://")) return { baseUrl: url, sessionOptions: undefined };
  const cert = pem(tls?.cert, "cert");
  const key = pem(tls?.key, "key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError("tls: a client certificate (cert) needs its key (key), and a key its certificate");
  }
  const sessionOptions: SecureClientSessionOptions = { ca: pem(tls?.ca, "ca"), cert, key };
  // Node checks the certificate against servername (also sent as SNI) when it is set.
  if (tls?.serverName) sessionOptions.servername = tls.serverName;
  return { baseUrl: url, sessionOptions };
}

function pem(value: Pem | undefined, what: string): Buffer | undefined {
  if (value === undefined || Buffer.isBuffer(value)) return value;
  if (typeof value !== "string") throw new TypeError(`tls.${what}: expected a PEM (Buffer or string) or a file path`);
  if (value.trimStart().startsWith("-----BEGIN")) return Buffer.from(value);
  return readFileSync(value);
}
