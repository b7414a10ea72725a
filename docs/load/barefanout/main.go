// Command barefanout is the reference the load run compares the frontend's
// fan-out with: a plain grpc-go server whose FanOut calls every backend of a
// target concurrently, over connections kept from the start, and returns
// their replies in the repeated results field, as a competent engineer would
// write it with no attention to cost: no metrics, tracing, health checking,
// admission control or summary.
//
//	barefanout --grpc-addr 127.0.0.1:19180 --target n3=127.0.0.1:1,127.0.0.1:2,127.0.0.1:3
//
// A target takes the frontend's static:///host:port,... form too, so that
// make load hands both the same flags. It starts serving only once every
// backend's connection is READY: a reference that quietly failed its calls
// would make every ratio against it a lie.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

type backend struct {
	addr   string
	client knowingnodev1.IdentityServiceClient
}

type server struct {
	knowingnodev1.UnimplementedFanOutServiceServer
	targets map[string][]backend
	def     string
}

func (s *server) FanOut(ctx context.Context, req *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	name := req.GetTarget()
	if name == "" {
		name = s.def
	}
	bs, ok := s.targets[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown target %q", name)
	}
	results := make([]*knowingnodev1.BackendResult, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			resp, err := b.client.GetIdentity(ctx, &knowingnodev1.GetIdentityRequest{})
			r := &knowingnodev1.BackendResult{Address: b.addr, Calls: 1, Code: codes.OK.String()}
			if err != nil {
				st := status.Convert(err)
				r.Code, r.Message = st.Code().String(), st.Message()
			} else {
				r.Identity = resp.GetIdentity()
			}
			results[i] = r
		})
	}
	wg.Wait()
	return &knowingnodev1.FanOutResponse{Target: name, Results: results}, nil
}

// targets is the repeated --target flag: name=addr,addr,...
type targets struct {
	names []string
	addrs map[string][]string
}

func (t *targets) String() string { return strings.Join(t.names, ",") }

func (t *targets) Set(v string) error {
	name, list, ok := strings.Cut(v, "=")
	list = strings.TrimPrefix(list, "static:///")
	if !ok || name == "" || list == "" {
		return fmt.Errorf("want name=host:port,host:port..., got %q", v)
	}
	if _, dup := t.addrs[name]; dup {
		return fmt.Errorf("target %q given twice", name)
	}
	addrs := strings.Split(list, ",")
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("target %q: %q is not host:port: %v", name, a, err)
		}
	}
	if t.addrs == nil {
		t.addrs = map[string][]string{}
	}
	t.names = append(t.names, name)
	t.addrs[name] = addrs
	return nil
}

func main() {
	addr := flag.String("grpc-addr", "127.0.0.1:19180", "listen address")
	var ts targets
	flag.Var(&ts, "target", "name=host:port,host:port,... (repeatable; the first is the default)")
	flag.Parse()
	if len(ts.names) == 0 {
		log.Fatal("no --target")
	}
	s := &server{targets: map[string][]backend{}, def: ts.names[0]}
	var ccs []*grpc.ClientConn
	for _, n := range ts.names {
		for _, a := range ts.addrs[n] {
			cc, err := grpc.NewClient("passthrough:///"+a, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				log.Fatal(err)
			}
			cc.Connect()
			ccs = append(ccs, cc)
			s.targets[n] = append(s.targets[n], backend{addr: a, client: knowingnodev1.NewIdentityServiceClient(cc)})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	for _, cc := range ccs {
		for st := cc.GetState(); st != connectivity.Ready; st = cc.GetState() {
			if !cc.WaitForStateChange(ctx, st) {
				log.Fatalf("backend %s: not READY after 10s (%v)", cc.Target(), st)
			}
		}
	}
	cancel()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	g := grpc.NewServer()
	knowingnodev1.RegisterFanOutServiceServer(g, s)
	reflection.Register(g)
	log.Fatal(g.Serve(lis))
}
