package downcity_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	downcity "github.com/downcity/downcity/clients/go"
	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

func dial(t *testing.T) *grpc.ClientConn {
	t.Helper()
	conn, err := downcity.Dial(city.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func user(t *testing.T) *downcity.UserClient {
	return downcity.NewUserClient(dial(t), city.studio, city.userToken)
}

func admin(t *testing.T) *downcity.AdminClient {
	return downcity.NewAdminClient(dial(t), city.adminKey)
}

func unique(prefix string) string { return fmt.Sprintf("%s-%08x", prefix, rand.Uint32()) }

func TestText(t *testing.T) {
	answer, err := user(t).Text(context.Background(), &downcityv1.TextRequest{
		Model: "mock-text", Messages: downcity.Prompt("Hello, City"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if answer.GetText() != "Echo: Hello, City" || answer.GetModel() != "mock-text" {
		t.Fatalf("answer %v", answer)
	}
	if answer.GetFinishReason() != downcityv1.FinishReason_FINISH_REASON_STOP || answer.GetUsage().GetOutputTokens() == 0 {
		t.Fatalf("answer %v", answer)
	}
}

func TestStreamToTheEnd(t *testing.T) {
	stream, err := user(t).StreamText(context.Background(), &downcityv1.StreamTextRequest{
		Messages: downcity.Prompt("Tell me a story"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var pieces []string
	for {
		piece, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pieces = append(pieces, piece.GetDelta())
	}
	if got := strings.Join(pieces, ""); got != "Echo: Tell me a story" || len(pieces) < 2 {
		t.Fatalf("pieces %q", pieces)
	}
	if stream.Usage().GetOutputTokens() == 0 || stream.FinishReason() != downcityv1.FinishReason_FINISH_REASON_STOP {
		t.Fatalf("usage %v, finish %v", stream.Usage(), stream.FinishReason())
	}
}

func TestStreamCancelledEarly(t *testing.T) {
	ctx := context.Background()
	slow := unique("slow")
	_, err := admin(t).UpsertModel(ctx, &downcityv1.UpsertModelRequest{Model: &downcityv1.Model{
		Id: slow, DisplayName: "Slow", ProviderId: "mock", UpstreamModel: "echo",
		Pathway: downcityv1.Pathway_PATHWAY_TEXT, Enabled: proto.Bool(true), MaxOutputTokens: 1000,
		MaxInputTokens: 100000, Options: map[string]string{"chunk_delay_ms": "100"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	words := make([]string, 100) // 100+ pieces: 10 s to the end
	for i := range words {
		words[i] = fmt.Sprintf("word%d", i)
	}
	started := time.Now()
	stream, err := user(t).StreamText(ctx, &downcityv1.StreamTextRequest{
		Model: slow, Messages: downcity.Prompt(strings.Join(words, " ")),
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	stream.Close()
	if _, err := stream.Recv(); !errors.Is(err, downcity.ErrStreamClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if stream.Usage() != nil {
		t.Fatal("a cancelled stream has no final usage")
	}
	if elapsed := time.Since(started); elapsed > 5*time.Second {
		t.Fatalf("cancel took %v", elapsed)
	}

	// Close from another goroutine interrupts a Recv that is waiting for a piece
	// (run with -race: Close and Recv share the stream's state).
	stream, err = user(t).StreamText(ctx, &downcityv1.StreamTextRequest{
		Model: slow, Messages: downcity.Prompt(strings.Join(words, " ")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	go stream.Close() // before or during the Recv below: either way it ends with ErrStreamClosed
	for err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(err, downcity.ErrStreamClosed) || stream.Usage() != nil {
		t.Fatalf("Recv interrupted by Close: %v (usage %v)", err, stream.Usage())
	}

	// Cancelling the context stops a stream too, with codes.Canceled.
	cctx, cancel := context.WithCancel(ctx)
	stream, err = user(t).StreamText(cctx, &downcityv1.StreamTextRequest{
		Model: slow, Messages: downcity.Prompt(strings.Join(words, " ")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for {
		if _, err = stream.Recv(); err != nil {
			break
		}
	}
	if downcity.CodeOf(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}
}

func TestImage(t *testing.T) {
	count := int32(2)
	answer, err := user(t).Image(context.Background(), &downcityv1.ImageRequest{Prompt: "a red square", Count: &count})
	if err != nil {
		t.Fatal(err)
	}
	if len(answer.GetImages()) != 2 || answer.GetImages()[0].GetMimeType() != "image/png" ||
		!bytes.HasPrefix(answer.GetImages()[0].GetData(), []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("images %v", answer.GetImages())
	}
}

func TestModels(t *testing.T) {
	models, err := user(t).Models(context.Background(), downcityv1.Pathway_PATHWAY_UNSPECIFIED)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*downcityv1.ModelInfo{}
	for _, m := range models {
		byID[m.GetId()] = m
	}
	if !byID["mock-text"].GetIsDefault() || byID["mock-image"].GetPathway() != downcityv1.Pathway_PATHWAY_IMAGE {
		t.Fatalf("models %v", models)
	}
	images, err := user(t).Models(context.Background(), downcityv1.Pathway_PATHWAY_IMAGE)
	if err != nil || len(images) != 1 || images[0].GetId() != "mock-image" {
		t.Fatalf("image models %v, %v", images, err)
	}
}

func TestExpiredToken(t *testing.T) {
	ctx := context.Background()
	secret, err := admin(t).IssueToken(ctx, city.studio, "expiring-user", time.Microsecond)
	if err != nil {
		t.Fatal(err)
	}
	_, err = downcity.NewUserClient(dial(t), city.studio, secret).Text(ctx, &downcityv1.TextRequest{Messages: downcity.Prompt("hi")})
	if downcity.CodeOf(err) != codes.Unauthenticated || downcity.ReasonOf(err) != "TOKEN_EXPIRED" {
		t.Fatalf("err %v", err)
	}
	if info := downcity.ErrorInfoOf(err); info.GetDomain() != downcity.Domain {
		t.Fatalf("info %v", info)
	}
}

func TestSuspendedStudio(t *testing.T) {
	ctx := context.Background()
	a := admin(t)
	created, err := a.CreateStudio(ctx, &downcityv1.CreateStudioRequest{StudioId: unique("susp"), DisplayName: "Suspended"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetStudio().GetId()
	secret, err := a.IssueToken(ctx, id, "u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetStudioStatus(ctx, id, downcityv1.StudioStatus_STUDIO_STATUS_SUSPENDED); err != nil {
		t.Fatal(err)
	}
	u := downcity.NewUserClient(dial(t), id, secret)
	_, err = u.Text(ctx, &downcityv1.TextRequest{Messages: downcity.Prompt("hi")})
	if downcity.CodeOf(err) != codes.PermissionDenied || downcity.ReasonOf(err) != "STUDIO_SUSPENDED" {
		t.Fatalf("err %v", err)
	}
	stream, err := u.StreamText(ctx, &downcityv1.StreamTextRequest{Messages: downcity.Prompt("hi")})
	if err == nil {
		_, err = stream.ReadAll()
	}
	if downcity.ReasonOf(err) != "STUDIO_SUSPENDED" {
		t.Fatalf("stream err %v", err)
	}
}

func TestAdminRoundTrip(t *testing.T) {
	ctx := context.Background()
	a := admin(t)
	created, err := a.CreateStudio(ctx, &downcityv1.CreateStudioRequest{StudioId: unique("acme"), DisplayName: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetStudio().GetId()
	if created.GetStudio().GetStatus() != downcityv1.StudioStatus_STUDIO_STATUS_ACTIVE {
		t.Fatalf("studio %v", created.GetStudio())
	}
	got, err := a.GetStudio(ctx, &downcityv1.GetStudioRequest{StudioId: id})
	if err != nil || got.GetStudio().GetDisplayName() != "Acme" {
		t.Fatalf("get %v, %v", got, err)
	}
	secret, err := a.IssueToken(ctx, id, "user-42", time.Hour)
	if err != nil || !strings.HasPrefix(secret, "dcu_") {
		t.Fatalf("issue %q, %v", secret, err)
	}
	answer, err := downcity.NewUserClient(dial(t), id, secret).Text(ctx, &downcityv1.TextRequest{Messages: downcity.Prompt("from acme")})
	if err != nil || answer.GetText() != "Echo: from acme" {
		t.Fatalf("answer %v, %v", answer, err)
	}
	// A user token is no admin credential.
	_, err = downcity.NewAdminClient(dial(t), secret).GetStudio(ctx, &downcityv1.GetStudioRequest{StudioId: id})
	if code := downcity.CodeOf(err); (code != codes.PermissionDenied && code != codes.Unauthenticated) || downcity.ReasonOf(err) == "" {
		t.Fatalf("user token on admin: %v", err)
	}
}
