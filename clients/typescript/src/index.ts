/**
 * Downcity client for Node: `UserClient` for AI calls through a City, `AdminClient` for
 * its admin surface, over gRPC (HTTP/2). The generated messages are re-exported; they come
 * from scripts/generate and are never edited by hand.
 */
export { AI, type ChatMessage, type ImageInput, type Messages, type TextInput, TextStream, UserClient, type UserClientOptions } from "./user.js";
export { AdminClient, type AdminClientOptions } from "./admin.js";
export { DOMAIN, DowncityError, reasonOf } from "./errors.js";
export { type ConnectionOptions, DEFAULT_STREAM_TIMEOUT_MS, DEFAULT_TIMEOUT_MS } from "./transport.js";
export { type Pem, type TlsOptions } from "./tls.js";
export { Code, ConnectError } from "@connectrpc/connect";
export * from "./gen/downcity/v1/common_pb.js";
export * from "./gen/downcity/v1/ai_pb.js";
export * from "./gen/downcity/v1/admin_pb.js";
export { type ErrorInfo, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
