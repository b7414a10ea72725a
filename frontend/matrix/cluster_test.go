package matrix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/knowingnode/knowingnode/frontend/fanout"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// A pod of the test cluster: its identity, on an IP of its own.
type podSpec struct {
	name, node, zone string
}

// listenAll listens on one port on 127.0.0.<first>.. for every pod, as a
// headless Service's pods look in DNS (A records carry no port).
func listenAll(t *testing.T, first, n int) ([]net.Listener, int) {
	t.Helper()
try:
	for range 20 {
		l0, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", first))
		if err != nil {
			t.Fatal(err)
		}
		port := l0.Addr().(*net.TCPAddr).Port
		lis := []net.Listener{l0}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", first+i, port))
			if err != nil {
				for _, l := range lis {
					l.Close()
				}
				continue try
			}
			lis = append(lis, l)
		}
		return lis, port
	}
	t.Fatal("no port free on every loopback IP")
	return nil, 0
}

func ip(first, i int) string { return fmt.Sprintf("127.0.0.%d", first+i) }

// startBackends serves an identity per pod; they stop with the test.
func startBackends(t *testing.T, first int, pods []podSpec) int {
	lis, port := listenAll(t, first, len(pods))
	for i, p := range pods {
		srv := grpc.NewServer()
		knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{
			PodName: p.name, NodeName: p.node, Zone: p.zone, PodIp: ip(first, i),
		}))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		go srv.Serve(lis[i])
		t.Cleanup(srv.Stop)
	}
	return port
}

// frontend is one in-process frontend: its fan-out service over the
// backends' DNS name, its matrix service over the peers' DNS name, served
// over gRPC on its own IP.
type frontend struct {
	fan    *fanout.Service
	matrix *Service
	addr   string
}

type clusterOptions struct {
	// blocked[i] are the backend IPs frontend i cannot reach: its dialer
	// drops them, as an iptables rule in its network namespace would.
	blocked map[int][]string
	matrix  Options // limits
	fanout  fanout.Options
}

// startCluster starts backends and frontends on loopback IPs, a real DNS
// server answering for both headless Services, and returns the frontends.
func startCluster(t *testing.T, backends, frontends []podSpec, o clusterOptions) []*frontend {
	t.Helper()
	dnsSrv, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	const beFirst, feFirst = 40, 60
	bePort := startBackends(t, beFirst, backends)
	var beEps, feEps []clusterdns.Endpoint
	for i := range backends {
		beEps = append(beEps, clusterdns.Endpoint{IP: ip(beFirst, i)})
	}
	lis, fePort := listenAll(t, feFirst, len(frontends))
	for i := range frontends {
		feEps = append(feEps, clusterdns.Endpoint{IP: ip(feFirst, i)})
	}
	for _, svc := range []clusterdns.Service{
		{Namespace: "kn", Name: "backend", Ports: []clusterdns.Port{{Name: "grpc", Port: uint16(bePort)}}, Endpoints: beEps},
		{Namespace: "kn", Name: "frontend-peers", Ports: []clusterdns.Port{{Name: "grpc", Port: uint16(fePort)}}, Endpoints: feEps},
	} {
		if err := dnsSrv.SetService(svc); err != nil {
			t.Fatal(err)
		}
	}
	ctx := t.Context()
	var out []*frontend
	for i, p := range frontends {
		self := &knowingnodev1.Identity{PodName: p.name, NodeName: p.node, Zone: p.zone, PodIp: ip(feFirst, i), PodIps: []string{ip(feFirst, i)}}
		blocked := map[string]bool{}
		for _, b := range o.blocked[i] {
			blocked[b] = true
		}
		dialer := func(ctx context.Context, addr string) (net.Conn, error) {
			if blocked[hostOf(addr)] {
				return nil, errors.New("dropped by the test's rule")
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
		dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer)}
		fo := o.fanout
		fo.BackendTimeout = 5 * time.Second // generous: a loaded machine, never a wall-clock assert
		fo.DefaultTimeout = 10 * time.Second
		fo.Concurrency = 8
		fan := fanout.New(self, fo)
		pool, err := fanout.NewPool("backend", time.Second, slog.New(slog.DiscardHandler), dial...)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := discovery.ParseTarget("backend=dns://" + dnsSrv.Addr() + "/backend.kn.svc.cluster.local:" + strconv.Itoa(bePort))
		if err != nil {
			t.Fatal(err)
		}
		target := discovery.NewTarget(spec, discovery.NewResolver(discovery.NetLookuper(spec.Server)), discovery.TargetOptions{Interval: time.Hour, OnUpdate: pool.Update})
		if err := target.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if err := fan.Add(target, pool); err != nil {
			t.Fatal(err)
		}
		peers := NewPeers(grpc.WithTransportCredentials(insecure.NewCredentials()))
		pspec, err := discovery.ParseTarget("peers=dns://" + dnsSrv.Addr() + "/frontend-peers.kn.svc.cluster.local:" + strconv.Itoa(fePort))
		if err != nil {
			t.Fatal(err)
		}
		ptarget := discovery.NewTarget(pspec, discovery.NewResolver(discovery.NetLookuper(pspec.Server)), discovery.TargetOptions{Interval: time.Hour, OnUpdate: peers.Update})
		if err := ptarget.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		mo := o.matrix
		mo.Self, mo.Local, mo.Peers = self, fan, peers
		mx := New(mo)
		srv := grpc.NewServer()
		knowingnodev1.RegisterFanOutServiceServer(srv, fan)
		knowingnodev1.RegisterMatrixServiceServer(srv, mx)
		var served sync.WaitGroup
		served.Go(func() { srv.Serve(lis[i]) })
		t.Cleanup(func() {
			srv.Stop()
			served.Wait()
			peers.Close()
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := fan.Close(closeCtx); err != nil {
				t.Error(err)
			}
			pool.Close()
		})
		out = append(out, &frontend{fan: fan, matrix: mx, addr: lis[i].Addr().String()})
	}
	return out
}

var (
	threeFrontends = []podSpec{
		{"frontend-a", "node-a", "zone-1"},
		{"frontend-b", "node-b", "zone-1"},
		{"frontend-c", "node-c", "zone-2"},
	}
	fourBackends = []podSpec{
		{"backend-0", "node-a", "zone-1"},
		{"backend-1", "node-b", "zone-1"},
		{"backend-2", "node-c", "zone-2"},
		{"backend-3", "node-a", "zone-1"},
	}
)

func cellsByKey(p *knowingnodev1.MatrixPath) map[[2]string]*knowingnodev1.MatrixCell {
	m := map[[2]string]*knowingnodev1.MatrixCell{}
	for _, c := range p.GetCells() {
		m[[2]string{c.Row, c.Column}] = c
	}
	return m
}

// hostOf is the host of host:port, or s itself.
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}
