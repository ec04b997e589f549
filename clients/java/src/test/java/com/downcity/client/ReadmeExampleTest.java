package com.downcity.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The README's example, compiled and run as written (a program of its own) against a real City. */
@ExtendWith(City.class)
class ReadmeExampleTest {
  @Test
  void readmeExampleRuns(@TempDir Path dir) throws Exception {
    Matcher block = Pattern.compile("(?s)```java\n(.*?)```").matcher(Files.readString(Paths.get("README.md")));
    assertTrue(block.find(), "no ```java block in README.md");
    String example = block.group(1).strip();
    assertTrue(example.lines().count() <= 5, "the README example has more than 5 lines");
    Path source = dir.resolve("ReadmeExample.java");
    Files.writeString(source, "import com.downcity.client.*;\n"
        + "public class ReadmeExample {\n  public static void main(String[] args) {\n" + example + "\n  }\n}\n");

    String classpath = System.getProperty("java.class.path");
    int compiled = ToolProvider.getSystemJavaCompiler()
        .run(null, null, null, "-cp", classpath, "-d", dir.toString(), source.toString());
    assertEquals(0, compiled, "the README example does not compile");

    String javaBin = Paths.get(System.getProperty("java.home"), "bin", "java").toString();
    ProcessBuilder run = new ProcessBuilder(javaBin, "-cp", dir + java.io.File.pathSeparator + classpath, "ReadmeExample")
        .redirectErrorStream(true);
    run.environment().putAll(City.env);
    Process process = run.start();
    String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(process.waitFor(60, TimeUnit.SECONDS));
    assertEquals(0, process.exitValue(), out);
    assertEquals(List.of("Echo: Hello, City", "Echo: Tell me a story"), out.lines().toList());
  }
}
