package com.downcity.client;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * A real City for the tests, one per test run: {@code downcity serve --dev --listen
 * 127.0.0.1:0 --data-dir <tmp>}, read from its dev.env, stopped (SIGTERM) when the run ends.
 * The binary is $DOWNCITY_BIN, else the newest of ../../target/{release,debug}/downcity.
 */
public final class City implements BeforeAllCallback {
  private static final List<String> KEYS =
      List.of("DOWNCITY_ADDR", "DOWNCITY_ADMIN_KEY", "DOWNCITY_STUDIO_ID", "DOWNCITY_USER_TOKEN");

  /** The running City's dev.env: DOWNCITY_ADDR, DOWNCITY_STUDIO_ID, … */
  static Map<String, String> env;

  static String addr() {
    return env.get("DOWNCITY_ADDR");
  }

  static String studio() {
    return env.get("DOWNCITY_STUDIO_ID");
  }

  static String userToken() {
    return env.get("DOWNCITY_USER_TOKEN");
  }

  static String adminKey() {
    return env.get("DOWNCITY_ADMIN_KEY");
  }

  private static AdminClient admin;
  private static String slowModel;

  /** An AdminClient with the admin key, for the run (closed with City). */
  static synchronized AdminClient admin() {
    if (admin == null) {
      admin = AdminClient.connect(addr(), adminKey());
    }
    return admin;
  }

  /** A text model that echoes one piece every 100 ms, for streams that are stopped early. */
  static synchronized String slowModel() {
    if (slowModel == null) {
      slowModel = "slow-" + java.util.UUID.randomUUID().toString().substring(0, 8);
      admin().upsertModel(downcity.v1.Admin.Model.newBuilder().setId(slowModel).setDisplayName("Slow")
          .setProviderId("mock").setUpstreamModel("echo").setPathway(downcity.v1.Common.Pathway.PATHWAY_TEXT)
          .setEnabled(true).setMaxOutputTokens(1000).setMaxInputTokens(100000)
          .putOptions("chunk_delay_ms", "100").build());
    }
    return slowModel;
  }

  @Override
  public void beforeAll(ExtensionContext context) throws Exception {
    context.getRoot().getStore(ExtensionContext.Namespace.GLOBAL)
        .getOrComputeIfAbsent(City.class, k -> start(), Running.class);
  }

  private static Running start() {
    try {
      Path dataDir = Files.createTempDirectory("downcity-java-");
      Path log = dataDir.resolve("city.log");
      Process process = new ProcessBuilder(binary(), "serve", "--dev", "--listen", "127.0.0.1:0",
          "--data-dir", dataDir.toString())
          .redirectErrorStream(true).redirectOutput(log.toFile()).start();
      Running running = new Running(process, dataDir);
      env = awaitDevEnv(process, dataDir.resolve("dev.env"), log);
      return running;
    } catch (IOException | InterruptedException e) {
      throw new IllegalStateException("could not start City", e);
    }
  }

  private static Map<String, String> awaitDevEnv(Process process, Path devEnv, Path log)
      throws IOException, InterruptedException {
    Instant deadline = Instant.now().plus(Duration.ofSeconds(60));
    while (true) {
      Map<String, String> read = Files.exists(devEnv) ? readDevEnv(devEnv) : Map.of();
      if (read.keySet().containsAll(KEYS)) {
        return read;
      }
      if (!process.isAlive()) {
        throw new IllegalStateException("City exited with " + process.exitValue() + ":\n" + Files.readString(log));
      }
      if (Instant.now().isAfter(deadline)) {
        throw new IllegalStateException("City wrote no dev.env within 60 s");
      }
      Thread.sleep(50); // polls for the file City writes once it listens
    }
  }

  static Map<String, String> readDevEnv(Path path) throws IOException {
    Map<String, String> read = new HashMap<>();
    for (String line : Files.readAllLines(path)) {
      int eq = line.indexOf('=');
      if (eq > 0) {
        read.put(line.substring(0, eq).trim(), line.substring(eq + 1).trim());
      }
    }
    return read;
  }

  static String binary() {
    String bin = System.getenv("DOWNCITY_BIN");
    if (bin != null && !bin.isEmpty()) {
      return bin;
    }
    Optional<Path> newest = Stream.of("../../target/release/downcity", "../../target/debug/downcity")
        .map(Paths::get).filter(Files::isExecutable)
        .max(Comparator.comparing(p -> p.toFile().lastModified()));
    return newest.orElseThrow(() -> new IllegalStateException(
        "no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)")).toAbsolutePath().toString();
  }

  /** Stops City at the end of the run and removes its data dir. */
  private record Running(Process process, Path dataDir) implements ExtensionContext.Store.CloseableResource {
    @Override
    public void close() throws Exception {
      synchronized (City.class) {
        if (admin != null) {
          admin.close();
        }
      }
      process.destroy(); // SIGTERM: City drains and exits
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor();
      }
      try (Stream<Path> files = Files.walk(dataDir)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }
}
