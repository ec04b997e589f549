package com.downcity.client;

import java.time.Duration;
import java.util.Objects;
import java.util.Optional;

/**
 * How a client connects (TLS) and its default deadlines: {@code ClientOptions.defaults().timeout(…)}.
 * Immutable; each setter returns a copy.
 */
public final class ClientOptions {
  /** The deadline of a unary call that sets none: 60 s, as in every Downcity client. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);
  /** The deadline of a stream that sets none: 300 s. */
  public static final Duration DEFAULT_STREAM_TIMEOUT = Duration.ofSeconds(300);

  private final Duration timeout;
  private final Duration streamTimeout;
  private final Tls tls;

  private ClientOptions(Duration timeout, Duration streamTimeout, Tls tls) {
    this.timeout = positive(timeout, "timeout");
    this.streamTimeout = positive(streamTimeout, "streamTimeout");
    this.tls = tls;
  }

  /** 60 s for unary calls, 300 s for streams, plaintext unless the target is https://. */
  public static ClientOptions defaults() {
    return new ClientOptions(DEFAULT_TIMEOUT, DEFAULT_STREAM_TIMEOUT, null);
  }

  /** The deadline of unary calls that set none. */
  public ClientOptions timeout(Duration timeout) {
    return new ClientOptions(timeout, streamTimeout, tls);
  }

  /** The deadline of streams that set none. */
  public ClientOptions streamTimeout(Duration streamTimeout) {
    return new ClientOptions(timeout, streamTimeout, tls);
  }

  /**
   * Connects over TLS as {@code tls} says (a private CA, a client certificate for mTLS),
   * also to a bare {@code host:port} target.
   */
  public ClientOptions tls(Tls tls) {
    return new ClientOptions(timeout, streamTimeout, Objects.requireNonNull(tls, "tls"));
  }

  /** The TLS options, if any were given. */
  public Optional<Tls> tls() {
    return Optional.ofNullable(tls);
  }

  public Duration timeout() {
    return timeout;
  }

  public Duration streamTimeout() {
    return streamTimeout;
  }

  private static Duration positive(Duration d, String name) {
    Objects.requireNonNull(d, name);
    if (d.isNegative() || d.isZero()) {
      throw new IllegalArgumentException(name + " must be positive, not " + d);
    }
    return d;
  }
}
