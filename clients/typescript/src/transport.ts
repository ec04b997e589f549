import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { convertErrors, credentials } from "./interceptors.js";
import { type TlsOptions, tlsSessionOptions } from "./tls.js";

import { DEFAULT_STREAM_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from "./ai.js";

export { DEFAULT_STREAM_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from "./ai.js";

/** Options every client takes. */
export interface ConnectionOptions {
  /**
   * City's address: "http://host:port" (plaintext) or "https://host:port" (TLS, the system
   * roots unless `tls.ca`); "host:port" is plaintext, or TLS when `tls` is given.
   */
  baseUrl: string;
  /** TLS with a private CA and/or a client certificate (mTLS); see TlsOptions. */
  tls?: TlsOptions;
  /** Deadline of unary calls; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Deadline of streams; default DEFAULT_STREAM_TIMEOUT_MS. */
  streamTimeoutMs?: number;
  /** More interceptors, run inside the credentials and error ones. */
  interceptors?: Interceptor[];
}

/** The HTTP/2 connection and gRPC transport of one client. */
export class Connection {
  readonly transport: Transport;
  readonly timeoutMs: number;
  readonly streamTimeoutMs: number;
  private readonly session: Http2SessionManager;

  constructor(options: ConnectionOptions, headers: Record<string, string>) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.streamTimeoutMs = options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS;
    const { baseUrl, sessionOptions } = tlsSessionOptions(options.baseUrl, options.tls);
    // Keepalive: ping every 30 s while calls are open; a ping unanswered in 10 s drops the connection.
    this.session = new Http2SessionManager(
      baseUrl,
      { pingIntervalMs: 30_000, pingTimeoutMs: 10_000, idleConnectionTimeoutMs: 60_000 },
      sessionOptions,
    );
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      defaultTimeoutMs: this.timeoutMs,
      interceptors: [credentials(headers), convertErrors, ...(options.interceptors ?? [])],
    });
  }

  /** Closes the HTTP/2 connection; calls still open fail. */
  close(): void {
    this.session.abort();
  }
}
