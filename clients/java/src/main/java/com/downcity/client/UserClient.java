package com.downcity.client;

import io.grpc.Channel;
import io.grpc.ManagedChannel;
import java.util.Map;

/**
 * An end user's connection to City: {@code UserClient.connect(target, studioId, userToken)}.
 * Every call carries the metadata City expects ({@code x-studio-id}, {@code authorization:
 * Bearer <user token>}) and a default deadline; the connection sends keepalive pings. Failed
 * calls throw {@link DowncityException}. Close it when done (try-with-resources).
 */
public final class UserClient implements AutoCloseable {
  private final ManagedChannel owned;
  private final Channel channel;
  private final AI ai;

  private UserClient(ManagedChannel owned, Channel base, String studioId, String userToken, ClientOptions options) {
    this.owned = owned;
    this.channel = Channels.withDefaults(
        base, Map.of("x-studio-id", studioId, "authorization", "Bearer " + userToken), options);
    this.ai = new AI(channel);
  }

  /** Connects to the City at {@code target} ("host:port") with the default options. */
  public static UserClient connect(String target, String studioId, String userToken) {
    return connect(target, studioId, userToken, ClientOptions.defaults());
  }

  /** Connects to the City at {@code target} with {@code options}. */
  public static UserClient connect(String target, String studioId, String userToken, ClientOptions options) {
    ManagedChannel channel = Channels.open(target, options);
    return new UserClient(channel, channel, studioId, userToken, options);
  }

  /** A client over a channel the caller owns (close() leaves it open). */
  public static UserClient over(Channel channel, String studioId, String userToken, ClientOptions options) {
    return new UserClient(null, channel, studioId, userToken, options);
  }

  /** The AI calls: {@code client.ai().text("Hello")}. */
  public AI ai() {
    return ai;
  }

  /**
   * The channel with this client's credentials and default deadlines, for the generated stubs
   * ({@code AIServiceGrpc.newBlockingStub(client.channel())}).
   */
  public Channel channel() {
    return channel;
  }

  /** Closes the connection the client opened; calls still open fail. */
  @Override
  public void close() {
    Channels.close(owned);
  }
}
