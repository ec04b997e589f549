package com.downcity.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import downcity.v1.Ai.ModelInfo;
import downcity.v1.Ai.StreamTextRequest;
import downcity.v1.Ai.StreamTextResponse;
import downcity.v1.Ai.TextRequest;
import downcity.v1.Ai.TextResponse;
import downcity.v1.Common.FinishReason;
import downcity.v1.Common.Pathway;
import downcity.v1.Common.Role;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(City.class)
class UserClientTest {
  private static UserClient client;
  private static AdminClient admin;

  @BeforeAll
  static void connect() {
    client = UserClient.connect(City.addr(), City.studio(), City.userToken());
    admin = City.admin();
  }

  @AfterAll
  static void close() {
    client.close();
  }

  static String unique(String prefix) {
    return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
  }

  /** 100 words: 100+ pieces, 10 s to the end on a model that sends a piece every 100 ms. */
  static StreamTextRequest slowRequest() {
    String words = IntStream.range(0, 100).mapToObj(i -> "word" + i).collect(Collectors.joining(" "));
    return StreamTextRequest.newBuilder().setModel(City.slowModel()).addAllMessages(AI.prompt(words)).build();
  }

  @Test
  void text() {
    TextResponse answer = client.ai().text(
        TextRequest.newBuilder().setModel("mock-text").addAllMessages(AI.prompt("Hello, City")).build());
    assertEquals("Echo: Hello, City", answer.getText());
    assertEquals("mock-text", answer.getModel());
    assertEquals(FinishReason.FINISH_REASON_STOP, answer.getFinishReason());
    assertTrue(answer.getUsage().getOutputTokens() > 0);
    assertFalse(answer.getRequestId().isEmpty());
  }

  @Test
  void textOfAConversationWithTheDefaultModel() {
    TextResponse answer = client.ai().text(TextRequest.newBuilder()
        .addMessages(AI.message(Role.ROLE_SYSTEM, "be brief"))
        .addMessages(AI.message(Role.ROLE_USER, "first"))
        .addMessages(AI.message(Role.ROLE_ASSISTANT, "ok"))
        .addMessages(AI.message(Role.ROLE_USER, "second one"))
        .setMaxTokens(2).build());
    assertEquals("Echo: second", answer.getText());
    assertEquals(FinishReason.FINISH_REASON_LENGTH, answer.getFinishReason());
  }

  @Test
  void streamToTheEnd() {
    List<String> deltas = new ArrayList<>();
    try (TextStream stream = client.ai().stream("Tell me a story")) {
      for (StreamTextResponse piece : stream) {
        deltas.add(piece.getDelta());
      }
      assertEquals("Echo: Tell me a story", String.join("", deltas));
      assertTrue(deltas.size() > 1, "pieces " + deltas);
      assertEquals("Echo: Tell me a story", stream.text());
      assertTrue(stream.usage().orElseThrow().getOutputTokens() > 0);
      assertEquals(FinishReason.FINISH_REASON_STOP, stream.finishReason());
      assertFalse(stream.model().isEmpty() || stream.requestId().isEmpty());
      assertFalse(stream.hasNext());
    }
  }

  @Test
  void streamClosedEarly() {
    long started = System.nanoTime();
    TextStream stream = client.ai().stream(slowRequest());
    stream.next();
    stream.next();
    stream.close();
    assertFalse(stream.hasNext(), "after close the iteration ends at once");
    assertTrue(stream.usage().isEmpty(), "a cancelled stream has no final usage");
    assertTrue(Duration.ofNanos(System.nanoTime() - started).toSeconds() < 5);
  }

  @Test
  void streamClosedFromAnotherThreadWhileReading() throws Exception {
    TextStream stream = client.ai().stream(slowRequest());
    stream.next();
    Thread closer = new Thread(stream::close);
    closer.start();
    int read = 1;
    while (stream.hasNext()) { // ends quietly once close() lands, before or during hasNext()
      stream.next();
      read++;
    }
    closer.join();
    assertTrue(read < 100, "read " + read + " pieces: the stream was not stopped");
    assertTrue(stream.usage().isEmpty());
  }

  @Test
  void aDefaultDeadlineEndsASlowStream() {
    AI hurried = client.ai().withTimeout(Duration.ofMillis(300));
    DowncityException error = assertThrows(DowncityException.class, () -> hurried.stream(slowRequest()).readAll());
    assertEquals(Status.Code.DEADLINE_EXCEEDED, error.code());
    assertEquals("", error.reason(), "a deadline hit in the client has no ErrorInfo");
    try (UserClient quick = UserClient.connect(City.addr(), City.studio(), City.userToken(),
        ClientOptions.defaults().streamTimeout(Duration.ofMillis(300)))) {
      error = assertThrows(DowncityException.class, () -> quick.ai().stream(slowRequest()).readAll());
      assertEquals(Status.Code.DEADLINE_EXCEEDED, error.code());
    }
  }

  @Test
  void image() {
    var answer = client.ai().image(downcity.v1.Ai.ImageRequest.newBuilder().setPrompt("a red square").setCount(2).build());
    assertEquals(2, answer.getImagesCount());
    assertEquals("image/png", answer.getImages(0).getMimeType());
    byte[] png = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assertArrayEquals(png, Arrays.copyOf(answer.getImages(0).getData().toByteArray(), 8));
    assertEquals(2, answer.getUsage().getImages());
    assertEquals(1, client.ai().image("one").getImagesCount());
  }

  @Test
  void models() {
    Map<String, ModelInfo> byId = client.ai().models().stream()
        .collect(Collectors.toMap(ModelInfo::getId, m -> m));
    assertTrue(byId.get("mock-text").getIsDefault());
    assertEquals(Pathway.PATHWAY_IMAGE, byId.get("mock-image").getPathway());
    List<String> images = client.ai().models(Pathway.PATHWAY_IMAGE).stream().map(ModelInfo::getId).toList();
    assertEquals(List.of("mock-image"), images);
  }

  @Test
  void expiredToken() {
    String secret = admin.issueUserToken(City.studio(), "expiring-user", Duration.ofNanos(1000));
    try (UserClient user = UserClient.connect(City.addr(), City.studio(), secret)) {
      DowncityException error = assertThrows(DowncityException.class, () -> user.ai().text("hi"));
      assertEquals(Status.Code.UNAUTHENTICATED, error.code());
      assertEquals("TOKEN_EXPIRED", error.reason());
      assertEquals(DowncityException.DOMAIN, error.domain());
      assertTrue(error.status().isPresent());
      assertTrue(error.getMessage().startsWith("UNAUTHENTICATED: TOKEN_EXPIRED: "), error.getMessage());
    }
  }

  @Test
  void suspendedStudio() throws Exception {
    var studio = admin.createStudio(unique("susp"), "Suspended");
    String secret = admin.issueUserToken(studio.getId(), "u1", null);
    admin.setStudioStatus(studio.getId(), downcity.v1.Admin.StudioStatus.STUDIO_STATUS_SUSPENDED);
    try (UserClient user = UserClient.connect(City.addr(), studio.getId(), secret)) {
      DowncityException error = assertThrows(DowncityException.class, () -> user.ai().text("hi"));
      assertEquals(Status.Code.PERMISSION_DENIED, error.code());
      assertEquals("STUDIO_SUSPENDED", error.reason());
      error = assertThrows(DowncityException.class, () -> user.ai().stream("hi").readAll());
      assertEquals("STUDIO_SUSPENDED", error.reason());
      Recorder recorder = new Recorder(Long.MAX_VALUE);
      user.ai().stream(StreamTextRequest.newBuilder().addAllMessages(AI.prompt("hi")).build(), recorder);
      assertEquals("STUDIO_SUSPENDED", ((DowncityException) recorder.awaitError()).reason());
      admin.setStudioStatus(studio.getId(), downcity.v1.Admin.StudioStatus.STUDIO_STATUS_ACTIVE);
      assertEquals("Echo: back", user.ai().text("back").getText());
    }
  }

  @Test
  void adminRoundTrip() {
    var studio = admin.createStudio(unique("acme"), "Acme");
    assertEquals(downcity.v1.Admin.StudioStatus.STUDIO_STATUS_ACTIVE, studio.getStatus());
    String secret = admin.issueUserToken(studio.getId(), "user-42", Duration.ofHours(1));
    assertTrue(secret.startsWith("dcu_"));
    try (UserClient user = UserClient.connect(City.addr(), studio.getId(), secret)) {
      assertEquals("Echo: from acme", user.ai().text("from acme").getText());
    }
    try (AdminClient notAdmin = AdminClient.connect(City.addr(), secret)) {
      DowncityException error = assertThrows(DowncityException.class,
          () -> notAdmin.createStudio(unique("x"), "X"));
      assertTrue(error.code() == Status.Code.PERMISSION_DENIED || error.code() == Status.Code.UNAUTHENTICATED,
          error.toString());
      assertFalse(error.reason().isEmpty());
    }
  }
}
