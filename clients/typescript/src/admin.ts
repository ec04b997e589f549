import { type CallOptions, type Client, createClient } from "@connectrpc/connect";
import {
  AdminService,
  type IssueUserTokenResponse,
  type Studio,
  StudioStatus,
} from "./gen/downcity/v1/admin_pb.js";
import { Connection, type ConnectionOptions } from "./transport.js";

/** Options of an AdminClient. */
export interface AdminClientOptions extends ConnectionOptions {
  /** The admin key (dca_…), or a studio key (dck_…) for that studio's calls. */
  adminKey: string;
}

/**
 * City's admin surface. `admin.raw` is the generated AdminService client (every call);
 * the methods here are shortcuts. Every failed call throws a DowncityError.
 */
export class AdminClient {
  readonly raw: Client<typeof AdminService>;
  private readonly conn: Connection;

  constructor(options: AdminClientOptions) {
    this.conn = new Connection(options, { authorization: `Bearer ${options.adminKey}` });
    this.raw = createClient(AdminService, this.conn.transport);
  }

  /** Creates a studio, ACTIVE; an empty id lets City choose one. */
  async createStudio(studioId: string, displayName = "", options?: CallOptions): Promise<Studio> {
    return must((await this.raw.createStudio({ studioId, displayName }, options)).studio);
  }

  /** One studio. */
  async getStudio(studioId: string, options?: CallOptions): Promise<Studio> {
    return must((await this.raw.getStudio({ studioId }, options)).studio);
  }

  /**
   * Sets the web origins ("https://game.example") whose pages may call City with the
   * studio's user tokens (beside the City-wide ones); an empty list clears them.
   */
  async setAllowedOrigins(studioId: string, origins: string[], options?: CallOptions): Promise<Studio> {
    return must((await this.raw.updateStudio({ studioId, allowedOrigins: { origins } }, options)).studio);
  }

  /** Suspends (calls fail with STUDIO_SUSPENDED) or re-activates a studio. */
  async setStudioStatus(studioId: string, status: StudioStatus, options?: CallOptions): Promise<Studio> {
    return must((await this.raw.updateStudio({ studioId, status }, options)).studio);
  }

  /** Issues a user token; `.secret` is its bearer secret. No ttlMs: it never expires. */
  issueUserToken(studioId: string, userId: string, ttlMs?: number, options?: CallOptions): Promise<IssueUserTokenResponse> {
    const ttl =
      ttlMs === undefined
        ? undefined
        : { seconds: BigInt(Math.floor(ttlMs / 1000)), nanos: Math.round((ttlMs % 1000) * 1e6) };
    return this.raw.issueUserToken({ studioId, userId, ttl }, options);
  }

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error("City sent an empty response");
  return value;
}
