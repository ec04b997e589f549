package com.downcity.client;

import downcity.v1.Ai.StreamTextResponse;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;

/** A Flow.Subscriber that records what it is sent, for the publisher tests. */
class Recorder implements Flow.Subscriber<StreamTextResponse> {
  final List<StreamTextResponse> pieces = new CopyOnWriteArrayList<>();
  final List<String> signals = new CopyOnWriteArrayList<>();
  private final long initialDemand;
  private final CountDownLatch ended = new CountDownLatch(1);
  private volatile BiConsumer<Recorder, StreamTextResponse> onEachPiece = (r, p) -> {};
  volatile Flow.Subscription subscription;
  private volatile Throwable error;

  Recorder(long initialDemand) {
    this.initialDemand = initialDemand;
  }

  /** Runs {@code action} after recording each piece (on the delivering thread). */
  Recorder onEachPiece(BiConsumer<Recorder, StreamTextResponse> action) {
    this.onEachPiece = action;
    return this;
  }

  @Override
  public void onSubscribe(Flow.Subscription subscription) {
    signals.add("subscribe");
    this.subscription = subscription;
    if (initialDemand != 0) {
      subscription.request(initialDemand);
    }
  }

  @Override
  public void onNext(StreamTextResponse piece) {
    synchronized (this) {
      pieces.add(piece);
      notifyAll();
    }
    onEachPiece.accept(this, piece);
  }

  @Override
  public void onError(Throwable t) {
    signals.add("error");
    error = t;
    ended.countDown();
  }

  @Override
  public void onComplete() {
    signals.add("complete");
    ended.countDown();
  }

  String text() {
    StringBuilder text = new StringBuilder();
    pieces.forEach(p -> text.append(p.getDelta()));
    return text.toString();
  }

  void awaitComplete() throws InterruptedException {
    if (!ended.await(30, TimeUnit.SECONDS) || error != null) {
      throw new AssertionError("no onComplete: " + signals + ", error " + error);
    }
  }

  Throwable awaitError() throws InterruptedException {
    if (!ended.await(30, TimeUnit.SECONDS) || error == null) {
      throw new AssertionError("no onError: " + signals);
    }
    return error;
  }

  /** Waits (at most 30 s) until {@code n} pieces have arrived. */
  void awaitPieces(int n) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    synchronized (this) {
      while (pieces.size() < n) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          throw new AssertionError("got " + pieces.size() + " pieces, not " + n);
        }
        TimeUnit.NANOSECONDS.timedWait(this, left);
      }
    }
  }
}
