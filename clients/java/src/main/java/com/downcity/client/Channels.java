package com.downcity.client;

import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.ManagedChannelRegistry;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/** The channels the clients open (keepalive pings, like the other Downcity clients). */
final class Channels {
  private Channels() {}

  /**
   * A channel to {@code target}: "host:port" or "http://host:port" (plaintext), or
   * "https://host:port" (TLS with the system roots); with {@code options.tls()} it is TLS as
   * that says (and an http:// target is refused).
   */
  static ManagedChannel open(String target, ClientOptions options) {
    boolean https = target.startsWith("https://");
    if (target.startsWith("http://") && options.tls().isPresent()) {
      throw new IllegalArgumentException(target + " is plaintext (http://) but TLS options were given: "
          + "use https:// or host:port");
    }
    String address = target.replaceFirst("^https?://", "").replaceFirst("/$", "");
    Tls tls = options.tls().orElse(https ? Tls.systemRoots() : null);
    ManagedChannelBuilder<?> builder;
    try {
      builder = Grpc.newChannelBuilder(
          address, tls == null ? InsecureChannelCredentials.create() : tls.credentials());
    } catch (ManagedChannelRegistry.ProviderNotFoundException | IllegalArgumentException e) {
      if (tls == null) {
        throw e;
      }
      // For example a client key the transport cannot read.
      throw new IllegalArgumentException("TLS: unusable credentials: " + e.getMessage(), e);
    }
    if (tls != null) {
      tls.serverName().ifPresent(builder::overrideAuthority);
    }
    return builder
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
