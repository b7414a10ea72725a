package identity

import (
	"context"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Server serves IdentityService. The identity never changes after start-up,
// so the reply is built once and shared by every call: nothing may mutate it.
type Server struct {
	knowingnodev1.UnimplementedIdentityServiceServer
	resp *knowingnodev1.GetIdentityResponse
}

// NewServer returns a Server answering with id, which the caller must no
// longer modify.
func NewServer(id *knowingnodev1.Identity) *Server {
	return &Server{resp: &knowingnodev1.GetIdentityResponse{Identity: id}}
}

// GetIdentity returns the identity.
func (s *Server) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	return s.resp, nil
}

// Identity returns the identity served; read-only.
func (s *Server) Identity() *knowingnodev1.Identity { return s.resp.Identity }

// Response returns the reply every call gets, e.g. to encode it once.
func (s *Server) Response() *knowingnodev1.GetIdentityResponse { return s.resp }
