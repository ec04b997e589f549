package downcity

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	downcityv1 "github.com/downcity/downcity/clients/go/gen/downcity/v1"
)

// AdminClient calls City's admin surface with an admin key (or a studio key,
// for that studio's calls). It is the generated AdminServiceClient with the
// bearer credentials and default deadlines added, plus a few shortcuts.
type AdminClient struct {
	downcityv1.AdminServiceClient
}

// NewAdminClient returns an AdminClient over conn with key as the bearer.
func NewAdminClient(conn grpc.ClientConnInterface, key string) *AdminClient {
	auth := authConn{conn: conn, md: []string{"authorization", "Bearer " + key}}
	return &AdminClient{downcityv1.NewAdminServiceClient(auth)}
}

// SetStudioStatus suspends or re-activates a studio.
func (a *AdminClient) SetStudioStatus(ctx context.Context, studioID string, status downcityv1.StudioStatus) (*downcityv1.Studio, error) {
	resp, err := a.UpdateStudio(ctx, &downcityv1.UpdateStudioRequest{StudioId: studioID, Status: status})
	if err != nil {
		return nil, err
	}
	return resp.GetStudio(), nil
}

// IssueToken issues a user token and returns its bearer secret; ttl 0 never expires.
func (a *AdminClient) IssueToken(ctx context.Context, studioID, userID string, ttl time.Duration) (string, error) {
	req := &downcityv1.IssueUserTokenRequest{StudioId: studioID, UserId: userID}
	if ttl > 0 {
		req.Ttl = durationpb.New(ttl)
	}
	resp, err := a.IssueUserToken(ctx, req)
	if err != nil {
		return "", err
	}
	return resp.GetSecret(), nil
}
