package com.downcity.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall.SimpleForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** Adds the credentials metadata and, to a call that has none, the default deadline. */
final class CallDefaults implements ClientInterceptor {
  private final Metadata headers = new Metadata();
  private final Duration timeout;
  private final Duration streamTimeout;

  CallDefaults(Map<String, String> headers, Duration timeout, Duration streamTimeout) {
    headers.forEach((k, v) -> this.headers.put(Metadata.Key.of(k, Metadata.ASCII_STRING_MARSHALLER), v));
    this.timeout = timeout;
    this.streamTimeout = streamTimeout;
  }

  @Override
  public <Q, R> ClientCall<Q, R> interceptCall(
      MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
    if (options.getDeadline() == null) {
      Duration deadline = method.getType() == MethodDescriptor.MethodType.UNARY ? timeout : streamTimeout;
      options = options.withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS);
    }
    return new SimpleForwardingClientCall<>(next.newCall(method, options)) {
      @Override
      public void start(Listener<R> listener, Metadata metadata) {
        metadata.merge(headers);
        super.start(listener, metadata);
      }
    };
  }
}
