// The AI calls of a UserClient, the same in Node and in browsers: nothing here knows the
// transport (HTTP/2 gRPC in Node, gRPC-Web in a browser) or uses a Node built-in.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  AIService,
  type ImageResponse,
  type Message,
  MessageSchema,
  type ModelInfo,
  type StreamTextRequestSchema,
  type StreamTextResponse,
  type TextRequestSchema,
  type TextResponse,
} from "./gen/downcity/v1/ai_pb.js";
import { FinishReason, Pathway, Role, type Usage } from "./gen/downcity/v1/common_pb.js";
import { DowncityError } from "./errors.js";

/** The deadline of a unary call that sets none, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** The deadline of a stream that sets none, in milliseconds. */
export const DEFAULT_STREAM_TIMEOUT_MS = 300_000;

/** How long calls may take, in milliseconds: what an AI needs of its connection. */
export interface Deadlines {
  readonly timeoutMs: number;
  readonly streamTimeoutMs: number;
}

/** One message: a role name or the Role enum, and its text. */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | Role;
  content: string;
}

/** A conversation: one user message as a string, or messages oldest first. */
export type Messages = string | (ChatMessage | Message)[];

/** The fields of a TextRequest, with `messages` in any form of Messages. */
export type TextInput = Omit<MessageInitShape<typeof TextRequestSchema>, "messages" | "$typeName"> & {
  messages: Messages;
};

/** The fields of an ImageRequest. */
export interface ImageInput {
  /** What the images should show. */
  prompt: string;
  /** Stable model id; empty uses the image pathway's default. */
  model?: string;
  /** How many images, 1 to 10; unset means 1. */
  count?: number;
  /** Labels stored on the usage record. */
  metadata?: Record<string, string>;
}

const ROLES = { system: Role.SYSTEM, user: Role.USER, assistant: Role.ASSISTANT } as const;

function toMessages(messages: Messages): Message[] {
  if (typeof messages === "string") return [create(MessageSchema, { role: Role.USER, content: messages })];
  return messages.map((m) =>
    create(MessageSchema, { role: typeof m.role === "string" ? ROLES[m.role] : m.role, content: m.content }),
  );
}

/**
 * A streamed answer: `for await (const piece of stream)` yields each piece (`piece.delta`).
 * The last piece carries finishReason and usage, which the stream also keeps (`stream.usage`,
 * `stream.text`). Leaving the loop early or `cancel()` stops the call (City stops the upstream
 * call and records the usage so far).
 */
export class TextStream implements AsyncIterable<StreamTextResponse> {
  usage: Usage | undefined;
  finishReason: FinishReason = FinishReason.UNSPECIFIED;
  model = "";
  requestId = "";
  text = "";
  private started = false;

  constructor(
    private readonly pieces: AsyncIterable<StreamTextResponse>,
    private readonly deadline: Deadline,
  ) {}

  async *[Symbol.asyncIterator](): AsyncIterator<StreamTextResponse> {
    if (this.started) throw new Error("a TextStream can be iterated only once");
    this.started = true;
    try {
      for await (const piece of this.pieces) {
        this.text += piece.delta;
        if (piece.model) this.model = piece.model;
        if (piece.requestId) this.requestId = piece.requestId;
        if (piece.usage) this.usage = piece.usage;
        if (piece.finishReason) this.finishReason = piece.finishReason;
        yield piece;
      }
    } catch (err) {
      throw DowncityError.from(err);
    } finally {
      this.deadline.cancel();
    }
  }

  /** Stops the stream. */
  cancel(): void {
    this.deadline.cancel();
  }
}

async function converted<T>(call: Promise<T>, deadline: Deadline): Promise<T> {
  try {
    return await call;
  } catch (err) {
    throw DowncityError.from(err);
  } finally {
    deadline.done();
  }
}

/**
 * A call's deadline and cancellation, kept here rather than in the transport: the
 * transport's own deadline timer outlives a call that is cancelled early and would keep
 * a Node process alive until it fires. This one is unref'd (in Node) and cleared when the
 * call ends.
 */
class Deadline {
  private readonly controller = new AbortController();
  private readonly timer: ReturnType<typeof setTimeout> | undefined;
  readonly signal: AbortSignal;

  constructor(
    private readonly timeoutMs: number,
    outer: AbortSignal | undefined,
  ) {
    if (timeoutMs > 0) {
      this.timer = setTimeout(
        () => this.controller.abort(new ConnectError("the call's deadline passed", Code.DeadlineExceeded)),
        timeoutMs,
      );
      (this.timer as { unref?: () => void }).unref?.();
    }
    this.signal = outer ? AbortSignal.any([outer, this.controller.signal]) : this.controller.signal;
  }

  /** Call options that use this deadline (and tell City about it in grpc-timeout). */
  options(options: CallOptions | undefined): CallOptions {
    const headers = new Headers(options?.headers);
    if (this.timeoutMs > 0) headers.set("grpc-timeout", `${Math.ceil(this.timeoutMs)}m`);
    return { ...options, timeoutMs: 0, signal: this.signal, headers };
  }

  /** Stops the call (if still running) and the timer. */
  cancel(): void {
    this.done();
    this.controller.abort();
  }

  /** The call ended: stops the timer. */
  done(): void {
    clearTimeout(this.timer);
  }
}

/** The AI calls of a UserClient. Every failed call throws a DowncityError. */
export class AI {
  constructor(
    /** The generated AIService client, with the same credentials and errors. */
    readonly raw: Client<typeof AIService>,
    private readonly conn: Deadlines,
  ) {}

  /** One complete answer. An empty `model` uses the text pathway's default. */
  text(input: TextInput, options?: CallOptions): Promise<TextResponse> {
    const deadline = new Deadline(options?.timeoutMs ?? this.conn.timeoutMs, options?.signal);
    return converted(this.raw.text({ ...input, messages: toMessages(input.messages) }, deadline.options(options)), deadline);
  }

  /** A streamed answer; see TextStream. */
  stream(input: TextInput, options?: CallOptions): TextStream {
    const deadline = new Deadline(options?.timeoutMs ?? this.conn.streamTimeoutMs, options?.signal);
    const request: MessageInitShape<typeof StreamTextRequestSchema> = {
      ...input,
      messages: toMessages(input.messages),
    };
    const pieces = this.raw.streamText(request, deadline.options(options));
    return new TextStream(pieces, deadline);
  }

  /** Generated images. An empty `model` uses the image pathway's default. */
  image(input: ImageInput, options?: CallOptions): Promise<ImageResponse> {
    const deadline = new Deadline(options?.timeoutMs ?? this.conn.timeoutMs, options?.signal);
    return converted(this.raw.image(input, deadline.options(options)), deadline);
  }

  /** The models this studio may use: all, or those of one pathway. */
  async models(pathway: Pathway = Pathway.UNSPECIFIED, options?: CallOptions): Promise<ModelInfo[]> {
    const deadline = new Deadline(options?.timeoutMs ?? this.conn.timeoutMs, options?.signal);
    return (await converted(this.raw.listModels({ pathway }, deadline.options(options)), deadline)).models;
  }
}

