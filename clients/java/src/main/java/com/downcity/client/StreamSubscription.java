package com.downcity.client;

import downcity.v1.AIServiceGrpc;
import downcity.v1.Ai.StreamTextRequest;
import downcity.v1.Ai.StreamTextResponse;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.util.concurrent.Flow;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One subscriber's StreamText call: the subscriber's demand becomes gRPC flow control (a
 * piece is read from the connection only when requested), its cancel() cancels the call.
 */
final class StreamSubscription
    implements Flow.Subscription, ClientResponseObserver<StreamTextRequest, StreamTextResponse> {
  private final Flow.Subscriber<? super StreamTextResponse> subscriber;
  private final AtomicBoolean done = new AtomicBoolean();
  // Guarded by this: the call, whether it has started, demand not yet passed to gRPC (before
  // the start, or past what gRPC's int counter holds) and demand passed but not yet delivered.
  private ClientCallStreamObserver<StreamTextRequest> call;
  private boolean started;
  private long pending;
  private long granted;

  private StreamSubscription(Flow.Subscriber<? super StreamTextResponse> subscriber) {
    this.subscriber = subscriber;
  }

  /** onSubscribe first (so no signal can precede it), then the call. */
  static void start(AIServiceGrpc.AIServiceStub stub, StreamTextRequest request,
      Flow.Subscriber<? super StreamTextResponse> subscriber) {
    StreamSubscription subscription = new StreamSubscription(subscriber);
    subscriber.onSubscribe(subscription);
    if (subscription.done.get()) {
      return;
    }
    stub.streamText(request, subscription);
    subscription.started();
  }

  @Override
  public void beforeStart(ClientCallStreamObserver<StreamTextRequest> call) {
    call.disableAutoRequestWithInitial(0);
    synchronized (this) {
      this.call = call;
    }
  }

  private synchronized void started() {
    started = true;
    if (done.get()) {
      call.cancel("cancelled by the subscriber", null);
    } else {
      grant();
    }
  }

  @Override
  public void request(long n) {
    if (n <= 0) {
      if (done.compareAndSet(false, true)) { // after the end, a request is a no-op (§3.6)
        cancelCall();
        subscriber.onError(new IllegalArgumentException("request(n) needs n > 0, not " + n + " (Reactive Streams §3.9)"));
      }
      return;
    }
    synchronized (this) {
      pending = pending + n < 0 ? Long.MAX_VALUE : pending + n;
      if (started && !done.get()) {
        grant();
      }
    }
  }

  /** Passes pending demand to gRPC, keeping what it holds within an int. */
  private void grant() {
    int more = (int) Math.min(pending, Integer.MAX_VALUE - granted);
    if (more > 0) {
      pending -= more;
      granted += more;
      call.request(more);
    }
  }

  @Override
  public void cancel() {
    if (done.compareAndSet(false, true)) {
      cancelCall();
    }
  }

  /** Cancels the call if it has started; started() cancels one that starts later. */
  private synchronized void cancelCall() {
    if (started) {
      call.cancel("cancelled by the subscriber", null);
    }
  }

  @Override
  public void onNext(StreamTextResponse piece) {
    if (done.get()) {
      return;
    }
    subscriber.onNext(piece);
    synchronized (this) {
      granted--;
      if (!done.get()) {
        grant();
      }
    }
  }

  @Override
  public void onError(Throwable error) {
    if (done.compareAndSet(false, true)) {
      subscriber.onError(DowncityException.from(error));
    }
  }

  @Override
  public void onCompleted() {
    if (done.compareAndSet(false, true)) {
      subscriber.onComplete();
    }
  }
}
