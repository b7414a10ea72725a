package matrix

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// Three frontends over four backends, through real DNS: a 3 x 4 matrix in
// which exactly the cells of the path the test drops (frontend-b to
// backend-2) fail, every other succeeds on every call, and the collapsed
// views and the locality summary count what they should.
func TestMatrixEveryFrontendEveryBackend(t *testing.T) {
	fes := startCluster(t, fourBackends, threeFrontends, clusterOptions{blocked: map[int][]string{1: {ip(40, 2)}}})
	resp, err := fes[0].matrix.Matrix(t.Context(), &knowingnodev1.MatrixRequest{Calls: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Rows) != 3 || len(resp.Columns) != 4 || len(resp.Paths) != 1 {
		t.Fatalf("%d rows, %d columns, %d paths; want 3, 4, 1: %v", len(resp.Rows), len(resp.Columns), len(resp.Paths), resp)
	}
	if resp.Cost != 3*4*3 {
		t.Errorf("cost %d, want 36", resp.Cost)
	}
	for _, r := range resp.Rows {
		if r.Error != "" {
			t.Errorf("row %s: error %q", r.Key, r.Error)
		}
	}
	cells := cellsByKey(resp.Paths[0])
	for _, fe := range threeFrontends {
		for _, be := range fourBackends {
			c := cells[[2]string{fe.name, be.name}]
			if c == nil {
				t.Errorf("no cell %s -> %s", fe.name, be.name)
				continue
			}
			if fe.name == "frontend-b" && be.name == "backend-2" {
				if c.Code != "UNAVAILABLE" || c.Calls != 3 || c.Ok != 0 || c.LatencyP50 != nil {
					t.Errorf("dropped path %s -> %s: %v; want 3 calls UNAVAILABLE, no latency", fe.name, be.name, c)
				}
				continue
			}
			if c.Code != "OK" || c.Calls != 3 || c.Ok != 3 || c.LatencyP50 == nil || c.LatencyP99.AsDuration() < c.LatencyP50.AsDuration() {
				t.Errorf("%s -> %s: %v; want 3 calls OK with p50 <= p99", fe.name, be.name, c)
			}
		}
	}
	s := resp.Paths[0].Summary
	// same node: a->0,3; b->1; c->2. same zone: a->1; b->0,3. cross zone:
	// a->2; b->2 (dropped); c->0,1,3.
	for _, w := range []struct {
		name           string
		l              *knowingnodev1.MatrixLocality
		calls, ok, bad int32
	}{
		{"same-node", s.SameNode, 12, 12, 0},
		{"same-zone", s.SameZone, 9, 9, 0},
		{"cross-zone", s.CrossZone, 15, 12, 3},
	} {
		if w.l.Calls != w.calls || w.l.Ok != w.ok || w.l.Failed != w.bad || w.l.LatencyP50 == nil {
			t.Errorf("%s: %v; want %d calls, %d ok, %d failed, a p50", w.name, w.l, w.calls, w.ok, w.bad)
		}
	}
	t.Logf("summary: %s", s.Line)
	if !strings.HasPrefix(s.Line, "same-node p50 ") {
		t.Errorf("summary line %q", s.Line)
	}
	byNode := map[[2]string]*knowingnodev1.MatrixCell{}
	for _, c := range resp.Paths[0].NodeCells {
		byNode[[2]string{c.Row, c.Column}] = c
	}
	if c := byNode[[2]string{"node-b", "node-c"}]; c == nil || c.Code != "UNAVAILABLE" || c.Calls != 3 {
		t.Errorf("node-b -> node-c: %v; want the 3 dropped calls", c)
	}
	if c := byNode[[2]string{"node-a", "node-a"}]; c == nil || c.Code != "OK" || c.Ok != 6 {
		t.Errorf("node-a -> node-a: %v; want 6 ok (two backends x 3)", c)
	}
	if len(resp.Paths[0].NodeCells) != 9 {
		t.Errorf("%d node cells, want 3 x 3", len(resp.Paths[0].NodeCells))
	}
	byZone := map[[2]string]*knowingnodev1.MatrixCell{}
	for _, c := range resp.Paths[0].ZoneCells {
		byZone[[2]string{c.Row, c.Column}] = c
	}
	if c := byZone[[2]string{"zone-1", "zone-2"}]; c == nil || c.Calls != 6 || c.Ok != 3 || c.Code != "UNAVAILABLE" {
		t.Errorf("zone-1 -> zone-2: %v; want 6 calls, 3 ok, marked UNAVAILABLE", c)
	}
}

// The stream sends one round per frontend and call as each comes back, then
// the whole matrix; over gRPC, from another frontend than the first.
func TestMatrixStream(t *testing.T) {
	fes := startCluster(t, fourBackends[:2], threeFrontends, clusterOptions{})
	cc, err := grpc.NewClient(fes[2].addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	st, err := knowingnodev1.NewMatrixServiceClient(cc).MatrixStream(t.Context(), &knowingnodev1.MatrixStreamRequest{Calls: 2})
	if err != nil {
		t.Fatal(err)
	}
	rounds := map[string][]int32{}
	var done *knowingnodev1.MatrixResponse
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if done != nil {
			t.Fatalf("a message after done: %v", m)
		}
		if r := m.GetRound(); r != nil {
			rounds[r.Row.Key] = append(rounds[r.Row.Key], r.Round)
			if len(r.Cells) != 2 || len(r.Columns) != 2 {
				t.Errorf("round %v: want the 2 cells and columns it touched", r)
			}
			for _, c := range r.Cells {
				if c.Calls != r.Round {
					t.Errorf("round %d of %s: cell %v; want every call so far", r.Round, r.Row.Key, c)
				}
			}
		}
		done = cmpOr(done, m.GetDone())
	}
	if len(rounds) != 3 {
		t.Errorf("rounds from %d frontends, want 3: %v", len(rounds), rounds)
	}
	for k, rs := range rounds {
		if len(rs) != 2 || rs[0] != 1 || rs[1] != 2 {
			t.Errorf("%s sent rounds %v, want [1 2]", k, rs)
		}
	}
	if done == nil || len(done.Rows) != 3 || len(done.Columns) != 2 || done.Coordinator.GetPodName() != "frontend-c" {
		t.Errorf("done: %v; want 3 rows, 2 columns, coordinated by frontend-c", done)
	}
}

func cmpOr[T comparable](a, b T) T {
	var zero T
	if a != zero {
		return a
	}
	return b
}

// A frontend without peers gives its own row; so does one its peers'
// Service does not list (yet).
func TestMatrixAlone(t *testing.T) {
	fes := startCluster(t, fourBackends[:3], threeFrontends[:1], clusterOptions{})
	alone := New(Options{Self: fes[0].matrix.opts.Self, Local: fes[0].fan})
	resp, err := alone.Matrix(t.Context(), &knowingnodev1.MatrixRequest{Calls: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Rows) != 1 || resp.Rows[0].Key != "frontend-a" || resp.Rows[0].Addresses[0] != "self" || len(resp.Columns) != 3 {
		t.Fatalf("rows %v, columns %v; want frontend-a in-process over 3 backends", resp.Rows, resp.Columns)
	}
	for _, c := range resp.Paths[0].Cells {
		if c.Code != "OK" || c.Calls != 1 {
			t.Errorf("cell %v", c)
		}
	}
}

// fakeFan answers ListTargets with n endpoints of target "backend", and
// FanOut with answer (after release closes, when set).
type fakeFan struct {
	n       int
	release chan struct{}
	started chan struct{}
	answer  func() (*knowingnodev1.FanOutResponse, error)
}

func (f *fakeFan) ListTargets(context.Context, *knowingnodev1.ListTargetsRequest) (*knowingnodev1.ListTargetsResponse, error) {
	ts := &knowingnodev1.TargetState{Name: "backend"}
	for range f.n {
		ts.Endpoints = append(ts.Endpoints, &knowingnodev1.Endpoint{Address: "10.0.0.1:9090"})
	}
	return &knowingnodev1.ListTargetsResponse{Targets: []*knowingnodev1.TargetState{ts, {Name: "vip"}}, DefaultTarget: "backend"}, nil
}

func (f *fakeFan) FanOut(ctx context.Context, _ *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	if f.started != nil {
		f.started <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if f.answer != nil {
		return f.answer()
	}
	return &knowingnodev1.FanOutResponse{}, nil
}

// A matrix over its cost, or past the matrices running at once, or whose
// own row the fan-out limits refuse, is RESOURCE_EXHAUSTED naming the limit;
// requests out of bounds are INVALID_ARGUMENT naming the bound.
func TestMatrixAdmission(t *testing.T) {
	ctx := t.Context()
	self := &knowingnodev1.Identity{PodName: "frontend-0"}
	wantErr := func(name string, err error, code codes.Code, words ...string) {
		t.Helper()
		if status.Code(err) != code {
			t.Errorf("%s: %v; want %v", name, err, code)
			return
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to name %q", name, err, w)
			}
		}
	}

	s := New(Options{Self: self, Local: &fakeFan{n: 10}, MaxMatrixCalls: 29})
	_, err := s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: 3})
	wantErr("1 x 10 x 3 over 29", err, codes.ResourceExhausted, LimitMatrixCalls, "30 backend calls", "29")
	if _, err := s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: 2}); err != nil {
		t.Errorf("1 x 10 x 2 within 29: %v", err)
	}
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: MaxCalls + 1})
	wantErr("calls 101", err, codes.InvalidArgument, "1..100")
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: -1})
	wantErr("calls -1", err, codes.InvalidArgument, "1..100")
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Targets: []string{"backend", "vip", "backend"}})
	wantErr("three targets", err, codes.InvalidArgument, "at most 2")
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Targets: []string{"backend", "backend"}})
	wantErr("a target twice", err, codes.InvalidArgument, "twice")
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Targets: []string{"nope"}})
	wantErr("unknown target", err, codes.NotFound, "nope", "backend, vip")
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Timeout: durationpb.New(2 * time.Minute)})
	wantErr("timeout 2m", err, codes.InvalidArgument, "at most 1m0s")

	// max-matrices: one running holds the only slot.
	slow := &fakeFan{n: 1, release: make(chan struct{}), started: make(chan struct{}, 1)}
	s = New(Options{Self: self, Local: slow, MaxMatrices: 1})
	var wg sync.WaitGroup
	var firstErr error
	wg.Go(func() { _, firstErr = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: 1}) })
	<-slow.started
	_, err = s.Matrix(ctx, &knowingnodev1.MatrixRequest{Calls: 1})
	wantErr("second matrix", err, codes.ResourceExhausted, LimitMatrices, "1 already running")
	close(slow.release)
	wg.Wait()
	if firstErr != nil {
		t.Errorf("first matrix: %v", firstErr)
	}

	// This frontend's own fan-out refused by its fan-out limits.
	refused := &fakeFan{n: 1, answer: func() (*knowingnodev1.FanOutResponse, error) {
		return nil, status.Error(codes.ResourceExhausted, "too many fan-outs: 1 already running, the limit (max-fanouts); retry later")
	}}
	_, err = New(Options{Self: self, Local: refused}).Matrix(ctx, &knowingnodev1.MatrixRequest{})
	wantErr("own row refused", err, codes.ResourceExhausted, "max-fanouts", "matrix refused")
}

// Behind a ClusterIP VIP the pod that answered is the column; a failure at
// the VIP, which several pods answered, stays the VIP's. A failure at a pod
// IP is the column of the pod that answered there for another frontend.
func TestMergeColumns(t *testing.T) {
	ok := func(addr, pod, node string) *knowingnodev1.BackendResult {
		return &knowingnodev1.BackendResult{Address: addr, Code: "OK", Calls: 1, Latency: durationpb.New(time.Millisecond),
			Identity: &knowingnodev1.Identity{PodName: pod, NodeName: node}}
	}
	bad := func(addr, code string, lat time.Duration) *knowingnodev1.BackendResult {
		return &knowingnodev1.BackendResult{Address: addr, Code: code, Calls: 1, Latency: durationpb.New(lat)}
	}
	m := newMerger([]string{"vip", "pods"})
	fe := func(name string) *knowingnodev1.FanOutResponse {
		return &knowingnodev1.FanOutResponse{Frontend: &knowingnodev1.Identity{PodName: name, NodeName: "n-" + name}}
	}
	r := fe("fe-1")
	r.Results = []*knowingnodev1.BackendResult{ok("10.96.0.10:9090", "be-0", "n1")}
	m.add("p1", 0, 1, r)
	r = fe("fe-1")
	r.Results = []*knowingnodev1.BackendResult{ok("10.96.0.10:9090", "be-1", "n2")}
	m.add("p1", 0, 2, r)
	r = fe("fe-2")
	r.Results = []*knowingnodev1.BackendResult{bad("10.96.0.10:9090", "UNAVAILABLE", time.Millisecond)}
	m.add("p2", 0, 1, r)
	r = fe("fe-1")
	r.Results = []*knowingnodev1.BackendResult{ok("10.244.0.5:9090", "be-0", "n1"), bad("10.244.0.6:9090", "DEADLINE_EXCEEDED", 0)}
	m.add("p1", 1, 1, r)
	r = fe("fe-2")
	r.Results = []*knowingnodev1.BackendResult{bad("10.244.0.5:9090", "DEADLINE_EXCEEDED", time.Second)}
	m.add("p2", 1, 1, r)

	resp := m.snapshot()
	vip := cellsByKey(resp.Paths[0])
	if len(vip) != 3 || vip[[2]string{"fe-1", "be-0"}].GetOk() != 1 || vip[[2]string{"fe-1", "be-1"}].GetOk() != 1 ||
		vip[[2]string{"fe-2", "10.96.0.10:9090"}].GetCode() != "UNAVAILABLE" {
		t.Errorf("VIP cells %v", resp.Paths[0].Cells)
	}
	pods := cellsByKey(resp.Paths[1])
	if c := pods[[2]string{"fe-2", "be-0"}]; c.GetCode() != "DEADLINE_EXCEEDED" || c.GetCalls() != 1 {
		t.Errorf("fe-2 -> be-0 by its pod IP: %v; want the timeout in be-0's column", c)
	}
	if c := pods[[2]string{"fe-1", "10.244.0.6:9090"}]; c.GetNotSent() != 1 || c.GetCalls() != 0 || c.GetCode() != "NOT_SENT" {
		t.Errorf("a call never sent: %v; want not_sent 1 and no calls, no latency sample", c)
	}
}

// A peer is this frontend at one of its pod IPs and its gRPC port; another
// frontend on the same IP (another port) is not.
func TestIsSelf(t *testing.T) {
	s := New(Options{Self: &knowingnodev1.Identity{PodIp: "10.0.0.5", PodIps: []string{"10.0.0.5", "fd00::5"},
		ServingAddresses: []string{"grpc=10.0.0.5:9090", "http=10.0.0.5:8080"}}})
	for addr, want := range map[string]bool{
		"10.0.0.5:9090": true, "[fd00::5]:9090": true, "10.0.0.5:9091": false, "10.0.0.6:9090": false, "nonsense": false,
	} {
		if got := s.isSelf(addr); got != want {
			t.Errorf("isSelf(%s) = %v, want %v", addr, got, want)
		}
	}
	noPort := New(Options{Self: &knowingnodev1.Identity{PodIp: "10.0.0.5"}})
	if !noPort.isSelf("10.0.0.5:1234") || noPort.isSelf("10.0.0.6:1234") {
		t.Error("without a known gRPC port, the pod IP decides")
	}
}
