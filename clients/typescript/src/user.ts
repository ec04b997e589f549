import { createClient } from "@connectrpc/connect";
import { AI } from "./ai.js";
import { AIService } from "./gen/downcity/v1/ai_pb.js";
import { Connection, type ConnectionOptions } from "./transport.js";

export { AI, type ChatMessage, type Deadlines, type ImageInput, type Messages, type TextInput, TextStream } from "./ai.js";

/** Options of a UserClient. */
export interface UserClientOptions extends ConnectionOptions {
  /** The studio the user belongs to (sent as x-studio-id). */
  studioId: string;
  /** The user's token, dcu_… (sent as authorization: Bearer). */
  userToken: string;
}

/** An end user's connection to City: `new UserClient({ baseUrl, studioId, userToken })`. */
export class UserClient {
  readonly ai: AI;
  private readonly conn: Connection;

  constructor(options: UserClientOptions) {
    this.conn = new Connection(options, {
      "x-studio-id": options.studioId,
      authorization: `Bearer ${options.userToken}`,
    });
    this.ai = new AI(createClient(AIService, this.conn.transport), this.conn);
  }

  /** Closes the connection. */
  close(): void {
    this.conn.close();
  }
}
