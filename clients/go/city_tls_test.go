package downcity_test

// The client over TLS and mTLS against a real City (serve --tls-cert/--tls-key/
// --tls-client-ca), with a PKI of the test's own (newPKI in tls_test.go).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	downcity "github.com/downcity/downcity/clients/go"
	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

// tlsCity is a `serve --dev` City over TLS; its certificate files are in dir.
type tlsCity struct {
	env map[string]string
	dir string
}

func startTLSCity(t *testing.T, p pki, extra ...string) tlsCity {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cert, key := write("tls.crt", p.serverCert), write("tls.key", p.serverKey)
	bin, err := cityBinary()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir,
		"--tls-cert", cert, "--tls-key", key}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOWNCITY_TLS__RELOAD_INTERVAL_MS=100")
	logFile, err := os.Create(filepath.Join(dir, "city.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		env := readDevEnv(filepath.Join(dir, "dev.env"))
		if env["DOWNCITY_USER_TOKEN"] != "" {
			return tlsCity{env: env, dir: dir}
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("City exited (%v):\n%s", err, log)
		default:
		}
	}
	t.Fatal("City wrote no dev.env within 60 s")
	return tlsCity{}
}

// text makes one Text call to c over TLS as tlsOpts says; plaintext when tlsOpts is nil.
func (c tlsCity) text(t *testing.T, target string, tlsOpts *downcity.TLS) (string, error) {
	t.Helper()
	if target == "" {
		target = c.env["DOWNCITY_ADDR"]
	}
	dial := func() (conn interface{ Close() error }, client *downcity.UserClient, err error) {
		if tlsOpts == nil {
			cc, err := downcity.Dial(target)
			if err != nil {
				return nil, nil, err
			}
			return cc, downcity.NewUserClient(cc, c.env["DOWNCITY_STUDIO_ID"], c.env["DOWNCITY_USER_TOKEN"]), nil
		}
		cc, err := downcity.DialTLS(target, *tlsOpts)
		if err != nil {
			return nil, nil, err
		}
		return cc, downcity.NewUserClient(cc, c.env["DOWNCITY_STUDIO_ID"], c.env["DOWNCITY_USER_TOKEN"]), nil
	}
	conn, client, err := dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answer, err := client.Text(ctx, &downcityv1.TextRequest{Messages: downcity.Prompt("hi")})
	return answer.GetText(), err
}

func TestCityOverTLS(t *testing.T) {
	p := newPKI(t)
	city := startTLSCity(t, p)
	addr := city.env["DOWNCITY_ADDR"]
	if !strings.HasPrefix(addr, "https://127.0.0.1:") {
		t.Fatalf("dev.env DOWNCITY_ADDR = %q, want https://", addr)
	}
	if text, err := city.text(t, "", &downcity.TLS{CA: p.caPEM}); err != nil || text != "Echo: hi" {
		t.Fatalf("text over TLS: %q %v", text, err)
	}
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM, ServerName: "city.test"}); err != nil {
		t.Fatalf("by server name: %v", err)
	}

	conn, err := downcity.DialTLS(addr, downcity.TLS{CA: p.caPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := downcity.NewUserClient(conn, city.env["DOWNCITY_STUDIO_ID"], city.env["DOWNCITY_USER_TOKEN"])
	stream, err := client.StreamText(context.Background(), &downcityv1.StreamTextRequest{Messages: downcity.Prompt("one two three")})
	if err != nil {
		t.Fatal(err)
	}
	if text, err := stream.ReadAll(); err != nil || text != "Echo: one two three" {
		t.Fatalf("stream over TLS: %q %v", text, err)
	}
	long := &downcityv1.StreamTextRequest{Messages: downcity.Prompt(strings.Repeat("word ", 200))}
	stream, err = client.StreamText(context.Background(), long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	stream.Close()

	plain := strings.TrimPrefix(addr, "https://")
	if _, err := city.text(t, plain, nil); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("plaintext to City's TLS port: %v", err)
	}
	if _, err := city.text(t, "", &downcity.TLS{CA: newPKI(t).caPEM}); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("another CA: %v", err)
	}
}

func TestCityOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.pem")
	if err := os.WriteFile(caFile, p.caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	city := startTLSCity(t, p, "--tls-client-ca", caFile)
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM, Cert: p.clientCert, Key: p.clientKey}); err != nil {
		t.Fatalf("mTLS with the right certificate: %v", err)
	}
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM}); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("no client certificate: %v", err)
	}
	other := newPKI(t)
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM, Cert: other.clientCert, Key: other.clientKey}); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("a client certificate from another CA: %v", err)
	}
}

func TestCityReloadsARotatedCertificate(t *testing.T) {
	p := newPKI(t)
	city := startTLSCity(t, p)
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM}); err != nil {
		t.Fatal(err)
	}
	next := newPKI(t) // a pair from another CA: only a new connection trusting it gets through
	for name, data := range map[string][]byte{"tls.key": next.serverKey, "tls.crt": next.serverCert} {
		staged := filepath.Join(city.dir, name+".new")
		if err := os.WriteFile(staged, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(staged, filepath.Join(city.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := city.text(t, "", &downcity.TLS{CA: next.caPEM})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate is not served after 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := city.text(t, "", &downcity.TLS{CA: p.caPEM}); downcity.CodeOf(err) != codes.Unavailable {
		t.Fatalf("the old certificate is still served: %v", err)
	}
}
