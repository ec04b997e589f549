// The console's one way to City: AdminService over gRPC-Web, on the page's
// own origin (so no CORS), with the key the user signed in with.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampFromDate, timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { AdminService } from "../../clients/typescript/src/gen/downcity/v1/admin_pb.js";
import { ErrorInfoSchema } from "../../clients/typescript/src/gen/google/rpc/error_details_pb.js";

export type Admin = Client<typeof AdminService>;

/** Who is signed in: the operator (admin key) or one studio (its key). */
export interface Session {
  key: string;
  /** The studio a studio key belongs to; null for the admin key. */
  studioId: string | null;
}

const SESSION_KEY = "downcity.console.session";

/** The session of this tab, if any: kept in sessionStorage only. */
export function loadSession(): Session | null {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    const parsed = JSON.parse(raw) as Session;
    return typeof parsed.key === "string" ? parsed : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

/** An AdminService client that sends `key` as the bearer of every call. */
export function adminClient(key: string): Admin {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${key}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({
    baseUrl: location.origin,
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return createClient(AdminService, transport);
}

/** An error as City's ErrorInfo reason and message, for the page. */
export function describeError(err: unknown): string {
  const error = ConnectError.from(err);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const reason = info ? info.reason : Code[error.code];
  return `${reason}: ${error.rawMessage}`;
}

/** Every item of a paged list, fetched page by page. */
export async function allPages<T>(
  page: (token: string) => Promise<{ items: T[]; next: string }>,
): Promise<T[]> {
  const items: T[] = [];
  let token = "";
  do {
    const answer = await page(token);
    items.push(...answer.items);
    token = answer.next;
  } while (token !== "");
  return items;
}

export const PAGE_MAX = 1000;

export function timestamp(date: Date): Timestamp {
  return timestampFromDate(date);
}

export function toDate(ts: Timestamp | undefined): Date | null {
  return ts ? timestampDate(ts) : null;
}
