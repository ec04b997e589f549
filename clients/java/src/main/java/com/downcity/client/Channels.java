package com.downcity.client;

import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The channels the clients open (keepalive pings, like the other Downcity clients). */
final class Channels {
  private Channels() {}

  static ManagedChannel open(String target, ClientOptions options) {
    return Grpc.newChannelBuilder(target, InsecureChannelCredentials.create())
        .keepAliveTime(30, TimeUnit.SECONDS)
        .keepAliveTimeout(10, TimeUnit.SECONDS)
        .keepAliveWithoutCalls(false)
        .build();
  }

  /** {@code channel} with the credentials metadata and default deadlines on every call. */
  static Channel withDefaults(Channel channel, Map<String, String> headers, ClientOptions options) {
    return ClientInterceptors.intercept(
        channel, new CallDefaults(headers, options.timeout(), options.streamTimeout()));
  }

  /** Closes a channel the client opened; calls still open fail with CANCELLED/UNAVAILABLE. */
  static void close(ManagedChannel channel) {
    if (channel == null) {
      return;
    }
    channel.shutdownNow();
    try {
      channel.awaitTermination(5, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
