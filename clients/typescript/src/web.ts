/**
 * Downcity client for browsers: `UserClient` for AI calls from a studio's web page, over
 * gRPC-Web (connect-web's transport on fetch), with the same API as the Node entry's
 * `UserClient` — `client.ai.text(...)`, `client.ai.stream(...)`, `client.ai.image(...)`,
 * errors as DowncityError with `.reason`. No Node built-ins: bundles for any browser.
 *
 * City answers a page only from an origin it allows: `[web] allowed_origins` City-wide,
 * or the studio's own (`downcity admin studios allow-origins`). The user token is visible
 * to the user whose browser holds it: issue it to that user only, with a short TTL.
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AI, DEFAULT_STREAM_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from "./ai.js";
import { AIService } from "./gen/downcity/v1/ai_pb.js";
import { convertErrors, credentials } from "./interceptors.js";

export {
  AI,
  type ChatMessage,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  type Deadlines,
  type ImageInput,
  type Messages,
  type TextInput,
  TextStream,
} from "./ai.js";
export { DOMAIN, DowncityError, reasonOf } from "./errors.js";
export { Code, ConnectError } from "@connectrpc/connect";
export * from "./gen/downcity/v1/common_pb.js";
export * from "./gen/downcity/v1/ai_pb.js";
export { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** Options of a browser UserClient. */
export interface UserClientOptions {
  /** City's address with its scheme: "https://city.example" (or "http://…" in development). */
  baseUrl: string;
  /** The studio the user belongs to (sent as x-studio-id). */
  studioId: string;
  /** The user's token, dcu_… (sent as authorization: Bearer); see the note above. */
  userToken: string;
  /** Deadline of unary calls; default DEFAULT_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Deadline of streams; default DEFAULT_STREAM_TIMEOUT_MS. */
  streamTimeoutMs?: number;
  /** More interceptors, run inside the credentials and error ones. */
  interceptors?: Interceptor[];
  /** The fetch to use; default the page's own. */
  fetch?: typeof globalThis.fetch;
}

/** An end user's client in a browser: `new UserClient({ baseUrl, studioId, userToken })`. */
export class UserClient {
  readonly ai: AI;

  constructor(options: UserClientOptions) {
    const transport = createGrpcWebTransport({
      baseUrl: options.baseUrl,
      // Binary gRPC-Web: smaller than text, and fetch streams it piece by piece.
      useBinaryFormat: true,
      fetch: options.fetch,
      interceptors: [
        credentials({ "x-studio-id": options.studioId, authorization: `Bearer ${options.userToken}` }),
        convertErrors,
        ...(options.interceptors ?? []),
      ],
    });
    const deadlines = {
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      streamTimeoutMs: options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS,
    };
    this.ai = new AI(createClient(AIService, transport), deadlines);
  }

  /** Nothing to close (fetch keeps no connection of the client's); there for the Node API's shape. */
  close(): void {}
}
