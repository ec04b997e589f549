package com.downcity.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.ServerCredentials;
import io.grpc.Status;
import io.grpc.TlsServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * TLS and mTLS against a TLS gRPC server of the test's own on 127.0.0.1 (no services: a call
 * that reaches it fails UNIMPLEMENTED, one that cannot connect UNAVAILABLE), with certificates
 * from clients/testdata/make-test-pki. The same cases against a real City serving TLS are in
 * CityTlsTest.
 */
class TlsTest {
  @TempDir
  static Path pki;

  private static final List<Server> servers = new ArrayList<>();
  private static String tlsAddr;
  private static String mtlsAddr;

  @BeforeAll
  static void start() throws Exception {
    Process make = new ProcessBuilder(Paths.get("../testdata/make-test-pki").toAbsolutePath().toString(), pki.toString())
        .inheritIO().start();
    assertEquals(0, make.waitFor());
    tlsAddr = listen(TlsServerCredentials.create(pki.resolve("server.pem").toFile(), pki.resolve("server.key").toFile()));
    mtlsAddr = listen(TlsServerCredentials.newBuilder()
        .keyManager(pki.resolve("server.pem").toFile(), pki.resolve("server.key").toFile())
        .trustManager(pki.resolve("ca.pem").toFile())
        .clientAuth(TlsServerCredentials.ClientAuth.REQUIRE).build());
  }

  private static String listen(ServerCredentials credentials) throws IOException {
    Server server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0), credentials).build().start();
    servers.add(server);
    return "127.0.0.1:" + server.getPort();
  }

  @AfterAll
  static void stop() {
    servers.forEach(Server::shutdownNow);
  }

  /** The code of one call: UNIMPLEMENTED once TLS is through, UNAVAILABLE if not. */
  private static Status.Code reach(String target, ClientOptions options) {
    try (UserClient client = UserClient.connect(target, "studio", "dcu_token", options.timeout(Duration.ofSeconds(10)))) {
      return assertThrows(DowncityException.class, () -> client.ai().models()).code();
    }
  }

  private static ClientOptions tls(Tls tls) {
    return ClientOptions.defaults().tls(tls);
  }

  private static byte[] bytes(String name) {
    try {
      return Files.readAllBytes(pki.resolve(name));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Test
  void privateCa() {
    Tls ca = Tls.systemRoots().trustedCa(pki.resolve("ca.pem"));
    assertEquals(Status.Code.UNIMPLEMENTED, reach(tlsAddr, tls(ca)));
    assertEquals(Status.Code.UNIMPLEMENTED, reach("https://" + tlsAddr, tls(ca.serverName("city.test"))));
    assertEquals(Status.Code.UNIMPLEMENTED, reach(tlsAddr, tls(Tls.systemRoots().trustedCa(bytes("ca.pem")))));
  }

  @Test
  void whatMustNotConnect() {
    assertEquals(Status.Code.UNAVAILABLE, reach(tlsAddr, tls(Tls.systemRoots().trustedCa(pki.resolve("other-ca.pem")))));
    assertEquals(Status.Code.UNAVAILABLE,
        reach(tlsAddr, tls(Tls.systemRoots().trustedCa(pki.resolve("ca.pem")).serverName("other.test"))));
    // https:// alone trusts the system roots only: the test CA is not one of them.
    assertEquals(Status.Code.UNAVAILABLE, reach("https://" + tlsAddr, ClientOptions.defaults()));
    assertEquals(Status.Code.UNAVAILABLE, reach(tlsAddr, ClientOptions.defaults())); // plaintext to TLS
  }

  @Test
  void mutualTls() {
    Tls ca = Tls.systemRoots().trustedCa(pki.resolve("ca.pem"));
    assertEquals(Status.Code.UNIMPLEMENTED,
        reach(mtlsAddr, tls(ca.clientCertificate(pki.resolve("client.pem"), pki.resolve("client.key")))));
    assertEquals(Status.Code.UNIMPLEMENTED,
        reach(mtlsAddr, tls(ca.clientCertificate(bytes("client.pem"), bytes("client.key")))));
    assertEquals(Status.Code.UNAVAILABLE, reach(mtlsAddr, tls(ca)));
    assertEquals(Status.Code.UNAVAILABLE,
        reach(mtlsAddr, tls(ca.clientCertificate(pki.resolve("other-client.pem"), pki.resolve("other-client.key")))));
  }

  @Test
  void badOptions() {
    IllegalArgumentException http = assertThrows(IllegalArgumentException.class,
        () -> UserClient.connect("http://127.0.0.1:1", "s", "t", tls(Tls.systemRoots())));
    assertTrue(http.getMessage().contains("is plaintext (http://) but TLS options were given"), http.getMessage());
    UncheckedIOException missing = assertThrows(UncheckedIOException.class,
        () -> Tls.systemRoots().trustedCa(Paths.get("/nonexistent/ca.pem")));
    assertTrue(missing.getMessage().contains("TLS CA: cannot read /nonexistent/ca.pem"));
    IllegalArgumentException pem = assertThrows(IllegalArgumentException.class,
        () -> Tls.systemRoots().trustedCa("not a pem".getBytes()));
    assertTrue(pem.getMessage().startsWith("TLS CA: not a PEM certificate"), pem.getMessage());
    IllegalArgumentException key = assertThrows(IllegalArgumentException.class,
        () -> UserClient.connect("127.0.0.1:1", "s", "t",
            tls(Tls.systemRoots().clientCertificate(bytes("client.pem"), "not a key".getBytes()))));
    assertTrue(key.getMessage().startsWith("TLS: unusable credentials: "), key.getMessage());
  }
}
