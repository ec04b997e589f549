package com.downcity.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.Map;
import java.util.Optional;

/**
 * A failed call to City: the gRPC {@link #code()} and the {@link #reason()} of the
 * {@code google.rpc.ErrorInfo} City puts in {@code grpc-status-details-bin} (such as
 * {@code TOKEN_EXPIRED}; empty when the error did not come from City, e.g. a deadline hit in
 * the client).
 */
public final class DowncityException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The ErrorInfo domain of City's errors. */
  public static final String DOMAIN = "downcity";

  private final Status.Code code;
  private final transient ErrorInfo info;
  private final transient com.google.rpc.Status status;

  private DowncityException(
      Status.Code code, String message, ErrorInfo info, com.google.rpc.Status status, Throwable cause) {
    super(describe(code, info.getReason(), message), cause);
    this.code = code;
    this.info = info;
    this.status = status;
  }

  /** Converts what a raw stub threw (a StatusRuntimeException, …) into a DowncityException. */
  public static DowncityException from(Throwable error) {
    if (error instanceof DowncityException known) {
      return known;
    }
    Status grpcStatus = Status.fromThrowable(error);
    com.google.rpc.Status rich = StatusProto.fromThrowable(error);
    ErrorInfo info = rich == null ? ErrorInfo.getDefaultInstance() : errorInfo(rich);
    String message = rich != null && !rich.getMessage().isEmpty()
        ? rich.getMessage()
        : Optional.ofNullable(grpcStatus.getDescription()).orElse("");
    return new DowncityException(grpcStatus.getCode(), message, info, rich, error);
  }

  /** The canonical gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** The ErrorInfo reason (UPPER_SNAKE, such as {@code STUDIO_SUSPENDED}); "" when there is none. */
  public String reason() {
    return info.getReason();
  }

  /** The ErrorInfo domain: {@link #DOMAIN} for City's errors, "" when there is no ErrorInfo. */
  public String domain() {
    return info.getDomain();
  }

  /** The ErrorInfo metadata: the values the reason is about. */
  public Map<String, String> errorMetadata() {
    return info.getMetadataMap();
  }

  /** The whole google.rpc.Status City sent (every detail), if it sent one. */
  public Optional<com.google.rpc.Status> status() {
    return Optional.ofNullable(status);
  }

  private static ErrorInfo errorInfo(com.google.rpc.Status status) {
    for (Any detail : status.getDetailsList()) {
      if (detail.is(ErrorInfo.class)) {
        try {
          return detail.unpack(ErrorInfo.class);
        } catch (InvalidProtocolBufferException e) {
          return ErrorInfo.getDefaultInstance();
        }
      }
    }
    return ErrorInfo.getDefaultInstance();
  }

  private static String describe(Status.Code code, String reason, String message) {
    return code + ": " + (reason.isEmpty() ? "" : reason + ": ") + message;
  }
}
