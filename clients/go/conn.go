package downcity

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// DefaultTimeout is the deadline of a unary call whose context has none.
const DefaultTimeout = 60 * time.Second

// DefaultStreamTimeout is the deadline of a stream whose context has none.
const DefaultStreamTimeout = 300 * time.Second

// Dial connects to a City at target with keepalive pings. target is
// "host:port" or "http://host:port" (plaintext), or "https://host:port" (TLS
// with the system roots). For a private CA or mTLS pass credentials from
// TLS.Credentials: Dial(target, grpc.WithTransportCredentials(creds)). opts
// come after the defaults, so they win.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	address, useTLS := splitScheme(target)
	transport := insecure.NewCredentials()
	if useTLS {
		transport = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	defaults := []grpc.DialOption{
		grpc.WithTransportCredentials(transport),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
	}
	return grpc.NewClient(address, append(defaults, opts...)...)
}

// DialTLS connects to a City over TLS as t says (CA, client certificate for
// mTLS, server name); target is "host:port" or "https://host:port".
func DialTLS(target string, t TLS, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if strings.HasPrefix(target, "http://") {
		return nil, errors.New("downcity: DialTLS to an http:// target: use https:// or host:port")
	}
	creds, err := t.Credentials()
	if err != nil {
		return nil, err
	}
	return Dial(target, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
}

// authConn adds credentials metadata and default deadlines to every call.
type authConn struct {
	conn grpc.ClientConnInterface
	md   []string
}

var _ grpc.ClientConnInterface = authConn{}

func (a authConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx, a.md...)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	return a.conn.Invoke(ctx, method, args, reply, opts...)
}

func (a authConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, a.md...)
	return a.conn.NewStream(ctx, desc, method, opts...)
}
