// Package calls holds the calls the load engine can make against each tier:
// a backend's GetIdentity, a frontend's FanOut, and the frontend's REST
// routes. Each turns the reply into the pods that answered.
package calls

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/grpccode"
	"github.com/knowingnode/knowingnode/internal/load/engine"
)

// maxBody bounds a REST reply read by the load tool.
const maxBody = 4 << 20

// Identity calls GetIdentity, rotating over the given connections.
func Identity(conns ...grpc.ClientConnInterface) engine.Caller {
	clients := make([]knowingnodev1.IdentityServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = knowingnodev1.NewIdentityServiceClient(c)
	}
	return IdentityPick(func(n uint64) knowingnodev1.IdentityServiceClient { return clients[n%uint64(len(clients))] })
}

// IdentityPick calls GetIdentity on the client pick returns for the n-th
// call; a nil client fails the call as UNAVAILABLE (no endpoints). A backend
// found draining is engine.ErrDraining, as the fan-out reports it.
func IdentityPick(pick func(n uint64) knowingnodev1.IdentityServiceClient) engine.Caller {
	var next atomic.Uint64
	req := &knowingnodev1.GetIdentityRequest{}
	return func(ctx context.Context) (engine.Result, error) {
		c := pick(next.Add(1))
		if c == nil {
			return engine.Result{}, status.Error(codes.Unavailable, "the target has no endpoints")
		}
		resp, err := c.GetIdentity(ctx, req)
		if err != nil {
			return engine.Result{}, Draining(err)
		}
		id := resp.GetIdentity()
		return engine.Result{Pod: id.GetPodName(), Node: id.GetNodeName(), Zone: id.GetZone()}, nil
	}
}

// CodeDraining is the code a fan-out gives a backend it found draining.
const CodeDraining = engine.CodeDraining

// healthNotServing is how grpc-go's client-side health checking words a
// connection whose server said NOT_SERVING (google.golang.org/grpc/health,
// client.go); the fan-out tells a draining backend by it too.
const healthNotServing = "health check failed. status=NOT_SERVING"

// Draining returns err wrapping engine.ErrDraining when it is a call the
// channel refused because the server's health is NOT_SERVING (it is
// shutting down, and was not called), else err.
func Draining(err error) error {
	st, ok := status.FromError(err)
	if ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), healthNotServing) {
		return fmt.Errorf("%w (%s)", engine.ErrDraining, st.Message())
	}
	return err
}

// FanOut calls a frontend's FanOut with req, rotating over the connections;
// the result names the frontend and the backends it reached.
func FanOut(req *knowingnodev1.FanOutRequest, conns ...grpc.ClientConnInterface) engine.Caller {
	clients := make([]knowingnodev1.FanOutServiceClient, len(conns))
	for i, c := range conns {
		clients[i] = knowingnodev1.NewFanOutServiceClient(c)
	}
	var next atomic.Uint64
	return func(ctx context.Context) (engine.Result, error) {
		c := clients[next.Add(1)%uint64(len(clients))]
		resp, err := c.FanOut(ctx, req)
		if err != nil {
			return engine.Result{}, Draining(err)
		}
		return FanOutResult(resp), nil
	}
}

// FanOutResult turns a fan-out reply into the frontend and backends that answered.
func FanOutResult(resp *knowingnodev1.FanOutResponse) engine.Result {
	fe := resp.GetFrontend()
	r := engine.Result{Pod: fe.GetPodName(), Node: fe.GetNodeName(), Zone: fe.GetZone()}
	for _, b := range resp.GetResults() {
		id := b.GetIdentity()
		r.Backends = append(r.Backends, hit(b.GetCode(), int(b.GetCalls()), id.GetPodName(), id.GetNodeName(), id.GetZone()))
	}
	return r
}

// hit is one backend result of a fan-out. DRAINING is no gRPC code: it is
// kept apart, not read as OK (the zero code) nor as a failure; any other
// name that is no code is UNKNOWN.
func hit(code string, calls int, pod, node, zone string) engine.Hit {
	if code == CodeDraining {
		return engine.Hit{Draining: true, Calls: calls}
	}
	c, err := grpccode.Parse(code)
	if err != nil {
		c = codes.Unknown
	}
	return engine.Hit{Pod: pod, Node: node, Zone: zone, Code: c, Calls: calls}
}

// restIdentity is the JSON shape shared by GET /v1/identity ("identity") and
// GET /v1/fanout ("frontend" and "results").
type restIdentity struct {
	PodName  string `json:"podName"`
	NodeName string `json:"nodeName"`
	Zone     string `json:"zone"`
}

type restReply struct {
	Identity *restIdentity `json:"identity"`
	Frontend *restIdentity `json:"frontend"`
	Results  []struct {
		Code     string        `json:"code"`
		Calls    int           `json:"calls"`
		Identity *restIdentity `json:"identity"`
	} `json:"results"`
	// An error reply of the gateway.
	Code    *int   `json:"code"`
	Message string `json:"message"`
}

// REST GETs url (a frontend's /v1/fanout or /v1/identity, or a backend's
// equivalent) with client. A failed call's code is the gateway's JSON code,
// else one mapped from the HTTP status.
func REST(client *http.Client, url string) engine.Caller {
	return func(ctx context.Context) (engine.Result, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return engine.Result{}, status.Error(codes.InvalidArgument, err.Error())
		}
		resp, err := client.Do(req)
		if err != nil {
			return engine.Result{}, transportErr(ctx, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		if err != nil {
			return engine.Result{}, transportErr(ctx, err)
		}
		var reply restReply
		jerr := json.Unmarshal(body, &reply)
		if resp.StatusCode != http.StatusOK {
			code := httpCode(resp.StatusCode)
			if jerr == nil && reply.Code != nil {
				code = codes.Code(*reply.Code)
			}
			return engine.Result{}, status.Errorf(code, "HTTP %d: %s", resp.StatusCode, reply.Message)
		}
		if jerr != nil {
			return engine.Result{}, status.Errorf(codes.Internal, "decode reply: %v", jerr)
		}
		var r engine.Result
		who := reply.Frontend
		if who == nil {
			who = reply.Identity
		}
		if who != nil {
			r = engine.Result{Pod: who.PodName, Node: who.NodeName, Zone: who.Zone}
		}
		for _, b := range reply.Results {
			var id restIdentity
			if b.Identity != nil {
				id = *b.Identity
			}
			r.Backends = append(r.Backends, hit(b.Code, b.Calls, id.PodName, id.NodeName, id.Zone))
		}
		return r, nil
	}
}

// transportErr is DEADLINE_EXCEEDED or CANCELLED when ctx has ended, else
// UNAVAILABLE, as a gRPC client would report it.
func transportErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(codes.Unavailable, err.Error())
}

// httpCode maps an HTTP status to the gRPC code a gateway would have sent.
func httpCode(s int) codes.Code {
	switch s {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	default:
		return codes.Unknown
	}
}
