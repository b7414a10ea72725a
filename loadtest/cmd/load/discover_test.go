package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/knowingnode/knowingnode/harness/clusterdns"
	"github.com/knowingnode/knowingnode/harness/loopbackpods"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/load/engine"
	"github.com/knowingnode/knowingnode/internal/load/report"
)

// The --connections clients of a load dial through discovery's gRPC
// resolvers and share one discovery loop: 8 connections to a headless
// Service, refreshed hourly, ask the DNS server one lookup's questions, not
// 8, and reach every pod; the report's tracker hears of them. Once the
// caller is closed, nothing the load started is left running.
func TestConnectionsShareOneDiscovery(t *testing.T) {
	ips, port := loopbackpods.Start(t, 3, 81, "web")
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	svc := clusterdns.Service{Namespace: "ns", Name: "web", ClusterIP: "None", Ports: []clusterdns.Port{{Name: "grpc", Port: port}}}
	for _, ip := range ips {
		svc.Endpoints = append(svc.Endpoints, clusterdns.Endpoint{IP: ip})
	}
	if err := dns.SetService(svc); err != nil {
		t.Fatal(err)
	}
	// What one lookup asks (A and AAAA), measured rather than assumed.
	before := dns.Queries()
	if _, err := discovery.NetLookuper(dns.Addr()).LookupIPAddr(t.Context(), "web.ns.svc.cluster.local."); err != nil {
		t.Fatal(err)
	}
	oneLookup := dns.Queries() - before

	leaks := goleak.IgnoreCurrent()
	file := filepath.Join(t.TempDir(), "run.html")
	args := []string{"--target", fmt.Sprintf("dns://%s/web.ns.svc.cluster.local:%d", dns.Addr(), port), "--refresh", "1h",
		"--connections", "8", "--balancing", "round_robin", "--rate", "0", "--concurrency", "4", "--count", "240", "--duration", "0s",
		"--window", "100ms", "--report", file}
	o, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := newObserver(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	before = dns.Queries()
	call, closeCall, err := newCaller(o, ob)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := engine.Run(t.Context(), o.engine, ob.wrap(call), ob.window)
	closeCall()
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.close(args, sum); err != nil {
		t.Fatal(err)
	}
	if q := dns.Queries() - before; q != oneLookup {
		t.Errorf("8 connections asked the DNS server %d questions; want %d, one lookup's", q, oneLookup)
	}
	if sum.OK != 240 || len(sum.ByPod) != 3 {
		t.Errorf("%d of 240 calls ok, reaching %v; want all, reaching the 3 pods", sum.OK, sum.ByPod)
	}
	goleak.VerifyNone(t, leaks)
	d, err := report.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Pods {
		if p.Ready == nil || p.FirstCall == nil || p.New {
			t.Errorf("%s: %+v; want in DNS from the start, and called", p.Name, p)
		}
	}
	if len(d.Pods) != 3 || d.Discovery != "dns" || len(d.NeverCalled) != 0 {
		t.Errorf("the report has %d pods, discovery %q, never called %v; want 3, dns, none", len(d.Pods), d.Discovery, d.NeverCalled)
	}
}

// A target whose first resolution fails, or finds nothing, fails the load
// before any call, naming the target, and leaves nothing running.
func TestFirstResolutionFailsUpfront(t *testing.T) {
	dns, err := clusterdns.Start("127.0.0.1:0", "cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := pc.LocalAddr().String()
	pc.Close()
	// The fake clientset answers no streaming list: the informer lists.
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	leaks := goleak.IgnoreCurrent()
	for _, tc := range []struct {
		target, refresh string
		want            string
	}{
		{"dns://" + dns.Addr() + "/nobody.ns.svc.cluster.local:9090", "1s", "found no address"},
		{"srv://" + dns.Addr() + "/_grpc._tcp.nobody.ns.svc.cluster.local", "1s", "found no address"},
		{"dns://" + down + "/web.ns.svc.cluster.local:9090", "1s", "connection refused"},
		{"kubernetes:///nobody.ns:grpc", "0", "found no address"},
	} {
		o, err := parseFlags([]string{"--target", tc.target, "--refresh", tc.refresh, "--connections", "3", "--kubeconfig", ""})
		if err != nil {
			t.Fatal(err)
		}
		o.obs.client = fake.NewClientset()
		ob, err := newObserver(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, closeCall, err := newCaller(o, ob)
		if err == nil {
			closeCall()
		}
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("target %q", tc.target)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error naming the target and saying %q", tc.target, err, tc.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: refused after %v; want within the first refresh", tc.target, took)
		}
	}
	goleak.VerifyNone(t, leaks)
}
