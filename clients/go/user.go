package downcity

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"google.golang.org/grpc"

	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

// UserClient makes an end user's AI calls: every call carries the metadata
// City expects (x-studio-id, authorization: Bearer <user token>), and unary
// calls without a deadline get DefaultTimeout.
type UserClient struct {
	// AI is the generated AIService client with the same credentials.
	AI downcityv1.AIServiceClient
}

// NewUserClient returns a UserClient for one user token of one studio over
// conn (from Dial, or any grpc.ClientConnInterface).
func NewUserClient(conn grpc.ClientConnInterface, studioID, userToken string) *UserClient {
	auth := authConn{conn: conn, md: []string{"x-studio-id", studioID, "authorization", "Bearer " + userToken}}
	return &UserClient{AI: downcityv1.NewAIServiceClient(auth)}
}

// Prompt is a conversation of one user message.
func Prompt(text string) []*downcityv1.Message {
	return []*downcityv1.Message{{Role: downcityv1.Role_ROLE_USER, Content: text}}
}

// Text generates one complete answer. An empty Model uses the text default.
func (c *UserClient) Text(ctx context.Context, req *downcityv1.TextRequest, opts ...grpc.CallOption) (*downcityv1.TextResponse, error) {
	return c.AI.Text(ctx, req, opts...)
}

// Image generates images. An empty Model uses the image default.
func (c *UserClient) Image(ctx context.Context, req *downcityv1.ImageRequest, opts ...grpc.CallOption) (*downcityv1.ImageResponse, error) {
	return c.AI.Image(ctx, req, opts...)
}

// Models lists the models this studio may use; PATHWAY_UNSPECIFIED lists all.
func (c *UserClient) Models(ctx context.Context, pathway downcityv1.Pathway, opts ...grpc.CallOption) ([]*downcityv1.ModelInfo, error) {
	resp, err := c.AI.ListModels(ctx, &downcityv1.ListModelsRequest{Pathway: pathway}, opts...)
	if err != nil {
		return nil, err
	}
	return resp.GetModels(), nil
}

// StreamText starts a streamed answer. Read it with Recv until io.EOF; the
// last piece carries the finish reason and the usage (also kept: Usage).
// Close stops it early (City stops the upstream call); cancelling ctx does too.
func (c *UserClient) StreamText(ctx context.Context, req *downcityv1.StreamTextRequest, opts ...grpc.CallOption) (*TextStream, error) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, DefaultStreamTimeout)
	}
	stream, err := c.AI.StreamText(ctx, req, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &TextStream{stream: stream, cancel: cancel}, nil
}

// TextStream is a streamed answer; see UserClient.StreamText. One goroutine
// reads it (Recv, ReadAll); Close, Usage and FinishReason are safe from any.
type TextStream struct {
	stream grpc.ServerStreamingClient[downcityv1.StreamTextResponse]
	cancel context.CancelFunc
	last   atomic.Pointer[downcityv1.StreamTextResponse]
	closed atomic.Bool
}

// ErrStreamClosed is returned by Recv after Close, also by a Recv that Close
// (from another goroutine) interrupted.
var ErrStreamClosed = errors.New("downcity: stream closed")

// Recv returns the next piece, io.EOF after the last one, or the call's error.
func (s *TextStream) Recv() (*downcityv1.StreamTextResponse, error) {
	if s.closed.Load() {
		return nil, ErrStreamClosed
	}
	piece, err := s.stream.Recv()
	if err != nil {
		s.cancel()
		if s.closed.Load() {
			return nil, ErrStreamClosed
		}
		return nil, err
	}
	if piece.GetUsage() != nil {
		s.last.Store(piece)
	}
	return piece, nil
}

// Close stops the stream; it is safe to call more than once, after the end,
// and while another goroutine is blocked in Recv.
func (s *TextStream) Close() {
	s.closed.Store(true)
	s.cancel()
}

// Usage is what the call consumed, once the last piece has been received.
func (s *TextStream) Usage() *downcityv1.Usage { return s.last.Load().GetUsage() }

// FinishReason is why the answer ended, once the last piece has been received.
func (s *TextStream) FinishReason() downcityv1.FinishReason { return s.last.Load().GetFinishReason() }

// ReadAll reads the stream to its end and returns the whole text.
func (s *TextStream) ReadAll() (string, error) {
	var text []byte
	for {
		piece, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return string(text), nil
		}
		if err != nil {
			return string(text), err
		}
		text = append(text, piece.GetDelta()...)
	}
}
