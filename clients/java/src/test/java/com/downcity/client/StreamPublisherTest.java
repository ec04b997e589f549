package com.downcity.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import downcity.v1.Ai.StreamTextRequest;
import downcity.v1.Ai.StreamTextResponse;
import downcity.v1.Common.FinishReason;
import java.util.List;
import java.util.concurrent.Flow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** ai().stream(request, subscriber) and ai().publisher(request): the Flow form of a stream. */
@ExtendWith(City.class)
class StreamPublisherTest {
  private static UserClient client;

  @BeforeAll
  static void connect() {
    client = UserClient.connect(City.addr(), City.studio(), City.userToken());
  }

  @AfterAll
  static void close() {
    client.close();
  }

  static StreamTextRequest request(String prompt) {
    return StreamTextRequest.newBuilder().addAllMessages(AI.prompt(prompt)).build();
  }

  @Test
  void onePieceAtATimeToTheEnd() throws Exception {
    Recorder recorder = new Recorder(1).onEachPiece((r, piece) -> r.subscription.request(1));
    client.ai().stream(request("Tell me a story"), recorder);
    recorder.awaitComplete();
    assertEquals("Echo: Tell me a story", recorder.text());
    assertTrue(recorder.pieces.size() > 1);
    StreamTextResponse last = recorder.pieces.get(recorder.pieces.size() - 1);
    assertEquals(FinishReason.FINISH_REASON_STOP, last.getFinishReason());
    assertTrue(last.getUsage().getOutputTokens() > 0);
    assertEquals(List.of("subscribe", "complete"), recorder.signals);
  }

  @Test
  void demandPastLongMaxValueIsUnbounded() throws Exception {
    Recorder recorder = new Recorder(Long.MAX_VALUE).onEachPiece((r, piece) -> r.subscription.request(Long.MAX_VALUE));
    client.ai().publisher(request("one two three four")).subscribe(recorder);
    recorder.awaitComplete();
    assertEquals("Echo: one two three four", recorder.text());
  }

  @Test
  void onlyRequestedPiecesArrive() throws Exception {
    Recorder recorder = new Recorder(2);
    client.ai().stream(request("a b c d e f g h"), recorder);
    recorder.awaitPieces(2);
    client.ai().text("a round trip on the same connection, while City has the rest to send");
    assertEquals(2, recorder.pieces.size(), "pieces arrived that were not requested");
    assertEquals(List.of("subscribe"), recorder.signals);
    recorder.subscription.request(100);
    recorder.awaitComplete();
    assertEquals("Echo: a b c d e f g h", recorder.text());
  }

  @Test
  void cancelStopsTheCallWithoutAnotherSignal() throws Exception {
    Recorder recorder = new Recorder(Long.MAX_VALUE).onEachPiece((r, piece) -> {
      if (r.pieces.size() == 2) {
        r.subscription.cancel();
      }
    });
    Flow.Publisher<StreamTextResponse> publisher = client.ai().publisher(UserClientTest.slowRequest());
    publisher.subscribe(recorder);
    recorder.awaitPieces(2);
    client.ai().text("a round trip");
    assertEquals(2, recorder.pieces.size());
    assertEquals(List.of("subscribe"), recorder.signals, "no onComplete/onError after cancel");

    // The publisher is cold: a new subscriber gets a call of its own.
    Recorder again = new Recorder(Long.MAX_VALUE).onEachPiece((r, piece) -> r.subscription.cancel());
    publisher.subscribe(again);
    again.awaitPieces(1);
  }

  @Test
  void cancelInOnSubscribeStartsNoCall() {
    Recorder recorder = new Recorder(0) {
      @Override
      public void onSubscribe(Flow.Subscription subscription) {
        super.onSubscribe(subscription);
        subscription.cancel();
      }
    };
    client.ai().stream(request("never sent"), recorder);
    assertEquals(List.of("subscribe"), recorder.signals);
  }

  @Test
  void nonPositiveDemandIsAnError() throws Exception {
    Recorder recorder = new Recorder(0);
    client.ai().stream(request("hi"), recorder);
    recorder.subscription.request(0);
    assertInstanceOf(IllegalArgumentException.class, recorder.awaitError());
    recorder.subscription.request(-1); // after the end: nothing more
    assertEquals(List.of("subscribe", "error"), recorder.signals);
  }
}
