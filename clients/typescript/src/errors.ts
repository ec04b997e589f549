import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** The ErrorInfo domain of City's errors. */
export const DOMAIN = "downcity";

/**
 * A failed call. It is a ConnectError (`code`, `rawMessage`, `metadata` — the response
 * headers and trailers, `findDetails(...)`), plus the google.rpc.ErrorInfo City attaches:
 * `reason` (UPPER_SNAKE, such as "TOKEN_EXPIRED"; "" when the error did not come from City,
 * e.g. a deadline hit in the client) and `info` (domain and metadata).
 */
export class DowncityError extends ConnectError {
  // `name` stays "ConnectError", so that `instanceof ConnectError` and ConnectError.from
  // (which check the name, across package copies) still recognise it.
  readonly reason: string;
  readonly info: ErrorInfo | undefined;

  constructor(cause: ConnectError) {
    super(cause.rawMessage, cause.code, cause.metadata, undefined, cause.cause);
    this.details = cause.details;
    this.info = cause.findDetails(ErrorInfoSchema)[0];
    this.reason = this.info?.reason ?? "";
  }

  /** The ErrorInfo's metadata (the values the reason is about). */
  get errorMetadata(): Record<string, string> {
    return { ...(this.info?.metadata ?? {}) };
  }

  static override [Symbol.hasInstance](v: unknown): boolean {
    return Function.prototype[Symbol.hasInstance].call(this, v);
  }

  /** Converts anything a call threw (ConnectError, AbortError, …) into a DowncityError. */
  static from(err: unknown): DowncityError {
    if (err instanceof DowncityError) return err;
    const converted = ConnectError.from(err, Code.Unknown);
    if (converted.code === Code.Internal && isTlsFailure(converted.cause)) {
      // A failed TLS handshake is a connection that could not be made: UNAVAILABLE, as in
      // gRPC's other clients (connect-node reports it INTERNAL).
      return new DowncityError(
        new ConnectError(converted.rawMessage, Code.Unavailable, converted.metadata, undefined, converted.cause),
      );
    }
    return new DowncityError(converted);
  }
}

/** Node's errors of a TLS handshake: OpenSSL's (ERR_SSL_…) and certificate checks'. */
function isTlsFailure(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | undefined)?.code;
  return (
    typeof code === "string" &&
    /^(ERR_SSL_|ERR_TLS_|ERR_OSSL_|UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT)/.test(code)
  );
}

/** The ErrorInfo reason of any error a call threw; "" when there is none. */
export function reasonOf(err: unknown): string {
  if (err instanceof DowncityError) return err.reason;
  if (err instanceof ConnectError) return err.findDetails(ErrorInfoSchema)[0]?.reason ?? "";
  return "";
}
