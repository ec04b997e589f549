// The test's own calls to City: the same generated code as the page, over
// gRPC-Web from Node (fetch), without an Origin header.
import { createClient, ConnectError, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { AIService } from "../../clients/typescript/src/gen/downcity/v1/ai_pb.js";
import { Role } from "../../clients/typescript/src/gen/downcity/v1/common_pb.js";
import { ErrorInfoSchema } from "../../clients/typescript/src/gen/google/rpc/error_details_pb.js";

function headers(values: Record<string, string>): Interceptor {
  return (next) => (req) => {
    for (const [name, value] of Object.entries(values)) req.header.set(name, value);
    return next(req);
  };
}

export function admin(baseUrl: string, key: string): Client<typeof AdminService> {
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [headers({ authorization: `Bearer ${key}` })] });
  return createClient(AdminService, transport);
}

/** One Text call by `token`'s user of `studioId`. */
export async function text(baseUrl: string, studioId: string, token: string, content = "Hello, City"): Promise<string> {
  const transport = createGrpcWebTransport({
    baseUrl,
    interceptors: [headers({ authorization: `Bearer ${token}`, "x-studio-id": studioId })],
  });
  const answer = await createClient(AIService, transport).text({ messages: [{ role: Role.USER, content }] });
  return answer.text;
}

/** The ErrorInfo reason of a failed call. */
export function reason(err: unknown): string {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0]?.reason ?? `no ErrorInfo: ${String(err)}`;
}
