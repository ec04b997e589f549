package downcity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
)

// TLS says how to reach City over TLS. The zero value trusts the system roots
// and sends no client certificate. Each PEM comes from a file or from bytes
// (bytes win when both are set).
type TLS struct {
	// CAFile / CA: the CA that signed City's certificate, instead of the system roots.
	CAFile string
	CA     []byte
	// CertFile+KeyFile / Cert+Key: the client certificate for mTLS (a City with
	// --tls-client-ca accepts only clients with a certificate from that CA).
	CertFile, KeyFile string
	Cert, Key         []byte
	// ServerName is the name City's certificate must carry when it is not the
	// target's host (for example a certificate for "city.internal" on 127.0.0.1).
	ServerName string
}

// Credentials builds the gRPC transport credentials (TLS 1.2 or later).
func (t TLS) Credentials() (credentials.TransportCredentials, error) {
	config, err := t.Config()
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(config), nil
}

// Config builds the tls.Config: the CA, the client certificate, the server name.
func (t TLS) Config() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	ca, err := pem(t.CA, t.CAFile, "CA")
	if err != nil {
		return nil, err
	}
	if ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, errors.New("downcity: TLS CA: no PEM certificate in it")
		}
		config.RootCAs = pool
	}
	cert, err := pem(t.Cert, t.CertFile, "client certificate")
	if err != nil {
		return nil, err
	}
	key, err := pem(t.Key, t.KeyFile, "client key")
	if err != nil {
		return nil, err
	}
	if (cert == nil) != (key == nil) {
		return nil, errors.New("downcity: TLS: a client certificate needs its key, and a key its certificate")
	}
	if cert != nil {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("downcity: TLS client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

func pem(inline []byte, file, what string) ([]byte, error) {
	if inline != nil || file == "" {
		return inline, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("downcity: TLS %s: %w", what, err)
	}
	return data, nil
}

// splitScheme takes "https://" or "http://" off target and says whether it
// asks for TLS; a target without either is left as it is.
func splitScheme(target string) (address string, useTLS bool) {
	switch {
	case strings.HasPrefix(target, "https://"):
		return strings.TrimSuffix(strings.TrimPrefix(target, "https://"), "/"), true
	case strings.HasPrefix(target, "http://"):
		return strings.TrimSuffix(strings.TrimPrefix(target, "http://"), "/"), false
	}
	return target, false
}
