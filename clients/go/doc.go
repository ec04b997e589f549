// Package downcity is the Go client of Downcity: a UserClient for AI calls
// through a City (Text, StreamText, Image, Models) and an AdminClient for its
// admin surface.
//
//	conn, err := downcity.Dial("127.0.0.1:50051")
//	client := downcity.NewUserClient(conn, "demo", "dcu_…")
//	answer, err := client.Text(ctx, &downcityv1.TextRequest{Messages: downcity.Prompt("Hello")})
//
// The generated messages and stubs are in
// github.com/downcity/downcity/clients/go/gen/downcity/v1 (package downcityv1);
// they come from scripts/generate and are never edited by hand.
//
// Errors are gRPC status errors: status.Code(err) is the canonical code and
// ReasonOf(err) the reason of the google.rpc.ErrorInfo City attaches (such as
// "TOKEN_EXPIRED" or "STUDIO_SUSPENDED").
package downcity
