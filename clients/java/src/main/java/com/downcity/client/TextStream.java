package com.downcity.client;

import downcity.v1.AIServiceGrpc;
import downcity.v1.Ai.StreamTextRequest;
import downcity.v1.Ai.StreamTextResponse;
import downcity.v1.Common.FinishReason;
import downcity.v1.Common.Usage;
import io.grpc.Context;
import io.grpc.StatusRuntimeException;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Optional;

/**
 * A streamed answer: iterate it ({@code for (var piece : stream)}) for each piece
 * ({@code piece.getDelta()}). The last piece carries the finish reason and usage, which the
 * stream also keeps ({@link #usage()}, {@link #text()}). {@link #close()} (or leaving a
 * try-with-resources block) stops the call early: City stops the upstream call and records
 * the usage so far, and iterating afterwards ends at once. One thread iterates; close() may
 * come from any.
 */
public final class TextStream implements Iterator<StreamTextResponse>, Iterable<StreamTextResponse>, AutoCloseable {
  private final Context.CancellableContext context;
  private final Iterator<StreamTextResponse> pieces;
  private final StringBuilder text = new StringBuilder();
  private volatile boolean closed;
  private Usage usage;
  private FinishReason finishReason = FinishReason.FINISH_REASON_UNSPECIFIED;
  private String model = "";
  private String requestId = "";

  private TextStream(Context.CancellableContext context, Iterator<StreamTextResponse> pieces) {
    this.context = context;
    this.pieces = pieces;
  }

  /** Starts the call in a context of its own, so that close() can cancel it. */
  static TextStream start(AIServiceGrpc.AIServiceBlockingStub stub, StreamTextRequest request) {
    Context.CancellableContext context = Context.current().withCancellation();
    Context previous = context.attach();
    try {
      return new TextStream(context, stub.streamText(request));
    } catch (StatusRuntimeException e) {
      context.cancel(e);
      throw DowncityException.from(e);
    } finally {
      context.detach(previous);
    }
  }

  @Override
  public boolean hasNext() {
    if (closed) {
      return false;
    }
    try {
      boolean more = pieces.hasNext();
      if (!more) {
        context.close();
      }
      return more;
    } catch (StatusRuntimeException e) {
      if (closed) {
        return false;
      }
      context.cancel(e);
      throw DowncityException.from(e);
    }
  }

  @Override
  public StreamTextResponse next() {
    if (!hasNext()) {
      throw new NoSuchElementException("the stream has ended");
    }
    StreamTextResponse piece = pieces.next();
    text.append(piece.getDelta());
    if (!piece.getModel().isEmpty()) {
      model = piece.getModel();
    }
    if (!piece.getRequestId().isEmpty()) {
      requestId = piece.getRequestId();
    }
    if (piece.hasUsage()) {
      usage = piece.getUsage();
    }
    if (piece.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
      finishReason = piece.getFinishReason();
    }
    return piece;
  }

  /** This stream itself: it can be iterated once. */
  @Override
  public Iterator<StreamTextResponse> iterator() {
    return this;
  }

  /** Reads the stream to its end and returns the whole text. */
  public String readAll() {
    while (hasNext()) {
      next();
    }
    return text();
  }

  /** Stops the call; safe more than once, after the end, and from another thread. */
  @Override
  public void close() {
    closed = true;
    context.close();
  }

  /** What the call consumed, once the last piece has been read. */
  public Optional<Usage> usage() {
    return Optional.ofNullable(usage);
  }

  /** Why the answer ended, once the last piece has been read. */
  public FinishReason finishReason() {
    return finishReason;
  }

  /** The text read so far. */
  public String text() {
    return text.toString();
  }

  /** The model that answered. */
  public String model() {
    return model;
  }

  /** City's id of the call. */
  public String requestId() {
    return requestId;
  }
}
