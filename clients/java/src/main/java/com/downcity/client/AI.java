package com.downcity.client;

import downcity.v1.AIServiceGrpc;
import downcity.v1.Ai.ImageRequest;
import downcity.v1.Ai.ImageResponse;
import downcity.v1.Ai.ListModelsRequest;
import downcity.v1.Ai.Message;
import downcity.v1.Ai.ModelInfo;
import downcity.v1.Ai.StreamTextRequest;
import downcity.v1.Ai.StreamTextResponse;
import downcity.v1.Ai.TextRequest;
import downcity.v1.Ai.TextResponse;
import downcity.v1.Common.Pathway;
import downcity.v1.Common.Role;
import io.grpc.Channel;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The AI calls of a {@link UserClient}: {@code client.ai().text("Hello")}. An empty model
 * uses the pathway's default. Every failed call throws {@link DowncityException}.
 */
public final class AI {
  private final AIServiceGrpc.AIServiceBlockingStub blocking;
  private final AIServiceGrpc.AIServiceStub async;

  AI(Channel channel) {
    this(AIServiceGrpc.newBlockingStub(channel), AIServiceGrpc.newStub(channel));
  }

  private AI(AIServiceGrpc.AIServiceBlockingStub blocking, AIServiceGrpc.AIServiceStub async) {
    this.blocking = blocking;
    this.async = async;
  }

  /** A conversation of one user message. */
  public static List<Message> prompt(String text) {
    return List.of(message(Role.ROLE_USER, text));
  }

  /** One message of a conversation. */
  public static Message message(Role role, String content) {
    return Message.newBuilder().setRole(role).setContent(content).build();
  }

  /**
   * The same calls with a deadline {@code timeout} from now instead of the client's default:
   * {@code client.ai().withTimeout(Duration.ofSeconds(5)).text("hi")}.
   */
  public AI withTimeout(Duration timeout) {
    long nanos = timeout.toNanos();
    return new AI(blocking.withDeadlineAfter(nanos, TimeUnit.NANOSECONDS),
        async.withDeadlineAfter(nanos, TimeUnit.NANOSECONDS));
  }

  /** One complete answer to one user message, from the default text model. */
  public TextResponse text(String prompt) {
    return text(TextRequest.newBuilder().addAllMessages(prompt(prompt)).build());
  }

  /** One complete answer. */
  public TextResponse text(TextRequest request) {
    return call(() -> blocking.text(request));
  }

  /** The answer to one user message piece by piece; see {@link TextStream}. */
  public TextStream stream(String prompt) {
    return stream(StreamTextRequest.newBuilder().addAllMessages(prompt(prompt)).build());
  }

  /** The answer piece by piece, as an Iterator; see {@link TextStream}. */
  public TextStream stream(StreamTextRequest request) {
    return TextStream.start(blocking, request);
  }

  /**
   * The answer piece by piece, pushed to {@code subscriber} as it requests them (onNext per
   * piece, then onComplete, or onError with a {@link DowncityException}); cancelling its
   * subscription stops the call. The same as {@code publisher(request).subscribe(subscriber)}.
   */
  public void stream(StreamTextRequest request, Flow.Subscriber<? super StreamTextResponse> subscriber) {
    publisher(request).subscribe(subscriber);
  }

  /** A cold publisher of the answer: each subscriber starts its own call. */
  public Flow.Publisher<StreamTextResponse> publisher(StreamTextRequest request) {
    Objects.requireNonNull(request, "request");
    return subscriber -> StreamSubscription.start(async, request, Objects.requireNonNull(subscriber));
  }

  /** One image for {@code prompt}, from the default image model. */
  public ImageResponse image(String prompt) {
    return image(ImageRequest.newBuilder().setPrompt(prompt).build());
  }

  /** Generated images. */
  public ImageResponse image(ImageRequest request) {
    return call(() -> blocking.image(request));
  }

  /** Every model this studio may use. */
  public List<ModelInfo> models() {
    return models(Pathway.PATHWAY_UNSPECIFIED);
  }

  /** The models of one pathway this studio may use (PATHWAY_UNSPECIFIED: all). */
  public List<ModelInfo> models(Pathway pathway) {
    return call(() -> blocking.listModels(ListModelsRequest.newBuilder().setPathway(pathway).build()))
        .getModelsList();
  }

  private static <T> T call(Supplier<T> call) {
    try {
      return call.get();
    } catch (StatusRuntimeException e) {
      throw DowncityException.from(e);
    }
  }
}
