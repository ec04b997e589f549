package com.downcity.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client over TLS and mTLS against a real City ({@code serve --tls-cert/--tls-key
 * /--tls-client-ca}), with certificates from clients/testdata/make-test-pki.
 */
class CityTlsTest {
  @TempDir
  static Path pki;
  @TempDir
  static Path nextPki;

  private static final List<Process> cities = new ArrayList<>();

  private record Running(Map<String, String> env, Path dataDir) {
    String addr() {
      return env.get("DOWNCITY_ADDR");
    }
  }

  @BeforeAll
  static void makePki() throws Exception {
    for (Path dir : List.of(pki, nextPki)) {
      Process make = new ProcessBuilder(Paths.get("../testdata/make-test-pki").toAbsolutePath().toString(), dir.toString())
          .inheritIO().start();
      assertEquals(0, make.waitFor());
    }
  }

  @AfterAll
  static void stopCities() throws InterruptedException {
    for (Process city : cities) {
      city.destroy();
      if (!city.waitFor(20, TimeUnit.SECONDS)) {
        city.destroyForcibly().waitFor();
      }
    }
  }

  /** `serve --dev` over TLS with a copy of the test PKI's server pair (so a test may rotate it). */
  private static Running start(String... extra) throws IOException, InterruptedException {
    Path dataDir = Files.createTempDirectory("downcity-java-tls-");
    Files.copy(pki.resolve("server.pem"), dataDir.resolve("tls.crt"));
    Files.copy(pki.resolve("server.key"), dataDir.resolve("tls.key"));
    List<String> command = new ArrayList<>(List.of(City.binary(), "serve", "--dev", "--listen", "127.0.0.1:0",
        "--data-dir", dataDir.toString(), "--tls-cert", dataDir.resolve("tls.crt").toString(),
        "--tls-key", dataDir.resolve("tls.key").toString()));
    command.addAll(List.of(extra));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(dataDir.resolve("city.log").toFile());
    builder.environment().put("DOWNCITY_TLS__RELOAD_INTERVAL_MS", "100");
    Process process = builder.start();
    cities.add(process);
    Path devEnv = dataDir.resolve("dev.env");
    Instant deadline = Instant.now().plus(Duration.ofSeconds(60));
    while (true) {
      Map<String, String> env = Files.exists(devEnv) ? City.readDevEnv(devEnv) : Map.of();
      if (env.containsKey("DOWNCITY_USER_TOKEN")) {
        return new Running(env, dataDir);
      }
      if (!process.isAlive() || Instant.now().isAfter(deadline)) {
        throw new IllegalStateException("City did not start:\n" + Files.readString(dataDir.resolve("city.log")));
      }
      Thread.sleep(50); // polls for the file City writes once it listens
    }
  }

  private static UserClient client(Running city, String target, ClientOptions options) {
    return UserClient.connect(target, city.env().get("DOWNCITY_STUDIO_ID"), city.env().get("DOWNCITY_USER_TOKEN"),
        options.timeout(Duration.ofSeconds(10)));
  }

  private static ClientOptions trusting(Path ca) {
    return ClientOptions.defaults().tls(Tls.systemRoots().trustedCa(ca));
  }

  /** The code a Text call fails with, or OK. */
  private static Status.Code call(Running city, String target, ClientOptions options) {
    try (UserClient client = client(city, target, options)) {
      assertEquals("Echo: hi", client.ai().text("hi").getText());
      return Status.Code.OK;
    } catch (DowncityException e) {
      return e.code();
    }
  }

  @Test
  void textAndStreamsOverTlsAndWhatCityRefuses() throws Exception {
    Running city = start();
    assertTrue(city.addr().startsWith("https://127.0.0.1:"), city.addr());
    try (UserClient client = client(city, city.addr(), trusting(pki.resolve("ca.pem")))) {
      assertEquals("Echo: over TLS", client.ai().text("over TLS").getText());
      try (TextStream stream = client.ai().stream("one two three")) {
        stream.forEachRemaining(piece -> { });
        assertEquals("Echo: one two three", stream.text());
      }
      TextStream cancelled = client.ai().stream("word ".repeat(200));
      cancelled.next();
      cancelled.close();
      assertTrue(cancelled.usage().isEmpty());
    }
    ClientOptions byName = ClientOptions.defaults().tls(Tls.systemRoots().trustedCa(pki.resolve("ca.pem")).serverName("city.test"));
    assertEquals(Status.Code.OK, call(city, city.addr(), byName));
    String plain = city.addr().replace("https://", "");
    // rustls answers the plaintext preface with a TLS alert, which grpc-java reads as a broken
    // HTTP/2 connection (INTERNAL) rather than a failed connect.
    Status.Code inClear = call(city, plain, ClientOptions.defaults());
    assertTrue(inClear == Status.Code.UNAVAILABLE || inClear == Status.Code.INTERNAL, inClear.toString());
    assertEquals(Status.Code.UNAVAILABLE, call(city, city.addr(), trusting(pki.resolve("other-ca.pem"))));
  }

  @Test
  void mutualTls() throws Exception {
    Running city = start("--tls-client-ca", pki.resolve("ca.pem").toString());
    Tls ca = Tls.systemRoots().trustedCa(pki.resolve("ca.pem"));
    ClientOptions good = ClientOptions.defaults().tls(ca.clientCertificate(pki.resolve("client.pem"), pki.resolve("client.key")));
    assertEquals(Status.Code.OK, call(city, city.addr(), good));
    assertEquals(Status.Code.UNAVAILABLE, call(city, city.addr(), ClientOptions.defaults().tls(ca)));
    ClientOptions other = ClientOptions.defaults()
        .tls(ca.clientCertificate(pki.resolve("other-client.pem"), pki.resolve("other-client.key")));
    assertEquals(Status.Code.UNAVAILABLE, call(city, city.addr(), other));
  }

  @Test
  void aRotatedCertificateIsServedToNewConnections() throws Exception {
    Running city = start();
    assertEquals(Status.Code.OK, call(city, city.addr(), trusting(pki.resolve("ca.pem"))));
    for (String[] pair : new String[][] {{"tls.key", "server.key"}, {"tls.crt", "server.pem"}}) {
      Path staged = city.dataDir().resolve(pair[0] + ".new");
      Files.copy(nextPki.resolve(pair[1]), staged);
      Files.move(staged, city.dataDir().resolve(pair[0]), StandardCopyOption.ATOMIC_MOVE);
    }
    Instant deadline = Instant.now().plus(Duration.ofSeconds(10));
    while (call(city, city.addr(), trusting(nextPki.resolve("ca.pem"))) != Status.Code.OK) {
      assertTrue(Instant.now().isBefore(deadline), "the new certificate is not served after 10 s");
      Thread.sleep(50);
    }
    assertEquals(Status.Code.UNAVAILABLE, call(city, city.addr(), trusting(pki.resolve("ca.pem"))));
  }
}
