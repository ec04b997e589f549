package downcity

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// DefaultTimeout is the deadline of a unary call whose context has none.
const DefaultTimeout = 60 * time.Second

// DefaultStreamTimeout is the deadline of a stream whose context has none.
const DefaultStreamTimeout = 300 * time.Second

// Dial connects to a City at target ("host:port") with keepalive pings. The
// connection is plaintext unless opts carry transport credentials (for TLS,
// grpc.WithTransportCredentials(credentials.NewTLS(...))); opts come after
// the defaults, so they win.
func Dial(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	defaults := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:    30 * time.Second,
			Timeout: 10 * time.Second,
		}),
	}
	return grpc.NewClient(target, append(defaults, opts...)...)
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
