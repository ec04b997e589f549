package com.downcity.client;

import downcity.v1.Admin.CreateStudioRequest;
import downcity.v1.Admin.IssueUserTokenRequest;
import downcity.v1.Admin.Model;
import downcity.v1.Admin.Studio;
import downcity.v1.Admin.StudioStatus;
import downcity.v1.Admin.UpdateStudioRequest;
import downcity.v1.Admin.UpsertModelRequest;
import downcity.v1.AdminServiceGrpc;
import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.time.Duration;
import java.util.Map;
import java.util.function.Supplier;

/**
 * City's admin surface with an admin key (or a studio key, for that studio's calls):
 * {@link #stub()} is the generated blocking stub with the bearer credentials and default
 * deadlines (every admin call; wrap what it throws with {@link DowncityException#from}); the
 * methods here are shortcuts that throw {@link DowncityException}.
 */
public final class AdminClient implements AutoCloseable {
  private final ManagedChannel owned;
  private final AdminServiceGrpc.AdminServiceBlockingStub stub;

  private AdminClient(ManagedChannel owned, Channel base, String key, ClientOptions options) {
    this.owned = owned;
    this.stub = AdminServiceGrpc.newBlockingStub(
        Channels.withDefaults(base, Map.of("authorization", "Bearer " + key), options));
  }

  /** Connects to the City at {@code target} ("host:port") with the default options. */
  public static AdminClient connect(String target, String key) {
    return connect(target, key, ClientOptions.defaults());
  }

  /** Connects to the City at {@code target} with {@code options}. */
  public static AdminClient connect(String target, String key, ClientOptions options) {
    ManagedChannel channel = Channels.open(target, options);
    return new AdminClient(channel, channel, key, options);
  }

  /** The generated AdminService stub with this client's credentials. */
  public AdminServiceGrpc.AdminServiceBlockingStub stub() {
    return stub;
  }

  /** Creates a studio, ACTIVE; an empty id lets City choose one. */
  public Studio createStudio(String studioId, String displayName) {
    return call(() -> stub.createStudio(
        CreateStudioRequest.newBuilder().setStudioId(studioId).setDisplayName(displayName).build()))
        .getStudio();
  }

  /** Suspends (calls fail with STUDIO_SUSPENDED) or re-activates a studio. */
  public Studio setStudioStatus(String studioId, StudioStatus status) {
    return call(() -> stub.updateStudio(
        UpdateStudioRequest.newBuilder().setStudioId(studioId).setStatus(status).build()))
        .getStudio();
  }

  /** Issues a user token and returns its bearer secret; a null ttl never expires. */
  public String issueUserToken(String studioId, String userId, Duration ttl) {
    IssueUserTokenRequest.Builder request = IssueUserTokenRequest.newBuilder().setStudioId(studioId).setUserId(userId);
    if (ttl != null) {
      request.setTtl(com.google.protobuf.Duration.newBuilder()
          .setSeconds(ttl.getSeconds()).setNanos(ttl.getNano()));
    }
    return call(() -> stub.issueUserToken(request.build())).getSecret();
  }

  /** Creates or replaces a model of the catalog. */
  public Model upsertModel(Model model) {
    return call(() -> stub.upsertModel(UpsertModelRequest.newBuilder().setModel(model).build())).getModel();
  }

  @Override
  public void close() {
    Channels.close(owned);
  }

  private static <T> T call(Supplier<T> call) {
    try {
      return call.get();
    } catch (StatusRuntimeException e) {
      throw DowncityException.from(e);
    }
  }
}
