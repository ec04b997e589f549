package downcity_test

// TLS and mTLS against a real TLS gRPC server on 127.0.0.1 (grpc-go's health
// service); the same cases against a real City are in city_tls_test.go.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	downcity "github.com/downcity/downcity/clients/go"
	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

// pki is a CA, a server certificate for 127.0.0.1 and city.test, and a client certificate.
type pki struct {
	caPEM, serverCert, serverKey, clientCert, clientKey []byte
	ca                                                  *x509.CertPool
}

func newPKI(t *testing.T) pki {
	t.Helper()
	caKey, caCert, caPEM := issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	_, _, serverPEM, serverKey := issueWithKey(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "city"}, DNSNames: []string{"city.test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	_, _, clientPEM, clientKey := issueWithKey(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "studio backend"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pki{caPEM: caPEM, serverCert: serverPEM, serverKey: serverKey, clientCert: clientPEM, clientKey: clientKey, ca: pool}
}

func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key, cert, certPEM, _ := issueWithKey(t, tmpl, parent, parentKey)
	return key, cert, certPEM
}

func issueWithKey(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return key, cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// tlsServer serves grpc-go's health service over TLS; requireClient asks for mTLS.
func tlsServer(t *testing.T, p pki, requireClient bool) string {
	t.Helper()
	pair, err := tls.X509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	config := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if requireClient {
		config.ClientAuth, config.ClientCAs = tls.RequireAndVerifyClientCert, p.ca
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer(grpc.Creds(credentials.NewTLS(config)))
	healthpb.RegisterHealthServer(server, health.NewServer())
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	return lis.Addr().String()
}

// check makes one call over conn: the health check, which needs the handshake to pass.
func check(conn *grpc.ClientConn, err error) error {

	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestTLSWithAPrivateCA(t *testing.T) {
	p := newPKI(t)
	addr := tlsServer(t, p, false)
	if err := check(downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM})); err != nil {
		t.Fatalf("private CA: %v", err)
	}
	if err := check(downcity.DialTLS("https://"+addr, downcity.TLS{CA: p.caPEM, ServerName: "city.test"})); err != nil {
		t.Fatalf("https:// target and server name: %v", err)
	}
	err := check(downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM, ServerName: "other.test"}))
	if downcity.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "other.test") {
		t.Fatalf("a certificate for another name: %v", err)
	}
	err = check(downcity.DialTLS(addr, downcity.TLS{CA: newPKI(t).caPEM}))
	if downcity.CodeOf(err) != codes.Unavailable || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("another CA: %v", err)
	}
	// https:// alone trusts the system roots only: this CA is not one of them.
	if err := check(downcity.Dial("https://" + addr)); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("system roots: %v", err)
	}
	// Plaintext to a TLS listener fails.
	if err := check(downcity.Dial(addr)); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("plaintext: %v", err)
	}
	// The UserClient's calls go over the same connection (this server has no AIService).
	conn, err := downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = downcity.NewUserClient(conn, "s", "t").Models(context.Background(), downcityv1.Pathway_PATHWAY_UNSPECIFIED)
	if downcity.CodeOf(err) != codes.Unimplemented {
		t.Fatalf("UserClient over TLS: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	addr := tlsServer(t, p, true)
	dir := t.TempDir()
	files := map[string][]byte{"ca.pem": p.caPEM, "client.pem": p.clientCert, "client.key": p.clientKey}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fromFiles := downcity.TLS{CAFile: filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client.key")}
	if err := check(downcity.DialTLS(addr, fromFiles)); err != nil {
		t.Fatalf("mTLS from files: %v", err)
	}
	if err := check(downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM, Cert: p.clientCert, Key: p.clientKey})); err != nil {
		t.Fatalf("mTLS from bytes: %v", err)
	}
	if err := check(downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM})); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("no client certificate: %v", err)
	}
	other := newPKI(t) // a client certificate from a CA the server does not trust
	if err := check(downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM, Cert: other.clientCert, Key: other.clientKey})); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("untrusted client certificate: %v", err)
	}
}

func TestTLSOptionErrors(t *testing.T) {
	p := newPKI(t)
	cases := map[string]struct {
		tls  downcity.TLS
		want string
	}{
		"cert without key": {downcity.TLS{Cert: p.clientCert}, "needs its key"},
		"key without cert": {downcity.TLS{Key: p.clientKey}, "needs its key"},
		"CA without PEM":   {downcity.TLS{CA: []byte("not a pem")}, "no PEM certificate"},
		"missing CA file":  {downcity.TLS{CAFile: "/nonexistent/ca.pem"}, "TLS CA: open /nonexistent/ca.pem"},
		"cert and wrong key": {downcity.TLS{Cert: p.clientCert, Key: newPKI(t).clientKey},
			"TLS client certificate: tls: private key does not match"},
	}
	for name, c := range cases {
		if _, err := downcity.DialTLS("127.0.0.1:1", c.tls); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	if _, err := downcity.DialTLS("http://127.0.0.1:1", downcity.TLS{}); err == nil {
		t.Error("DialTLS to http:// must fail")
	}
}
