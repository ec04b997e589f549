package com.downcity.client;

import io.grpc.ChannelCredentials;
import io.grpc.TlsChannelCredentials;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.util.Optional;

/**
 * TLS to City beyond the system roots: {@code Tls.systemRoots().trustedCa(Path.of("ca.pem"))
 * .clientCertificate(Path.of("client.pem"), Path.of("client.key"))}. Immutable; each setter
 * returns a copy. PEMs are read when set (a missing file fails there).
 */
public final class Tls {
  private final byte[] ca;
  private final byte[] cert;
  private final byte[] key;
  private final String serverName;

  private Tls(byte[] ca, byte[] cert, byte[] key, String serverName) {
    this.ca = ca;
    this.cert = cert;
    this.key = key;
    this.serverName = serverName;
  }

  /** TLS that trusts the system roots and sends no client certificate. */
  public static Tls systemRoots() {
    return new Tls(null, null, null, null);
  }

  /** Trusts the CA that signed City's certificate (PEM file) instead of the system roots. */
  public Tls trustedCa(Path caPem) {
    return trustedCa(read(caPem, "CA"));
  }

  /** Trusts the CA that signed City's certificate (PEM bytes) instead of the system roots. */
  public Tls trustedCa(byte[] caPem) {
    return new Tls(certificates(caPem, "CA"), cert, key, serverName);
  }

  /** A client certificate and its private key (PEM files, PKCS#8 key), for mTLS. */
  public Tls clientCertificate(Path certPem, Path keyPem) {
    return clientCertificate(read(certPem, "client certificate"), read(keyPem, "client key"));
  }

  /** A client certificate and its private key (PEM bytes, PKCS#8 key), for mTLS. */
  public Tls clientCertificate(byte[] certPem, byte[] keyPem) {
    return new Tls(ca, certificates(certPem, "client certificate"), keyPem.clone(), serverName);
  }

  /** The name City's certificate carries, when it is not the target's host. */
  public Tls serverName(String name) {
    return new Tls(ca, cert, key, name);
  }

  Optional<String> serverName() {
    return Optional.ofNullable(serverName);
  }

  /** The grpc-java channel credentials. */
  ChannelCredentials credentials() {
    TlsChannelCredentials.Builder builder = TlsChannelCredentials.newBuilder();
    try {
      if (ca != null) {
        builder.trustManager(new ByteArrayInputStream(ca));
      }
      if (cert != null) {
        builder.keyManager(new ByteArrayInputStream(cert), new ByteArrayInputStream(key));
      }
    } catch (IOException | IllegalArgumentException e) {
      throw new IllegalArgumentException("TLS: unusable PEM: " + e.getMessage(), e);
    }
    return builder.build();
  }

  /** {@code pem} if it holds X.509 certificates; IllegalArgumentException otherwise. */
  private static byte[] certificates(byte[] pem, String what) {
    try {
      if (CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(pem)).isEmpty()) {
        throw new CertificateException("no certificate in it");
      }
    } catch (CertificateException e) {
      throw new IllegalArgumentException("TLS " + what + ": not a PEM certificate: " + e.getMessage(), e);
    }
    return pem.clone();
  }

  private static byte[] read(Path path, String what) {
    try {
      return Files.readAllBytes(path);
    } catch (IOException e) {
      throw new UncheckedIOException("TLS " + what + ": cannot read " + path, e);
    }
  }
}
