package discovery_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// A gRPC client round-robins over every pod of a headless Service, found
// through the SRV records of its named port and re-resolved every 5 s (and
// after a lost connection), so it reaches the pods an autoscaler adds.
func Example() {
	cc, err := grpc.NewClient("srv:///_grpc._tcp.backend.default.svc.cluster.local",
		grpc.WithResolvers(discovery.Builders(discovery.Options{Refresh: 5 * time.Second})...),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	// Use cc as any client connection.
}

// Every scheme, as grpc.NewClient takes it. A DNS server may follow the
// scheme (dns://10.96.0.10:53/…); without one the system's resolver, with
// its search path, is asked. kubernetes:/// watches the Service's
// EndpointSlices through the API server (Options.Kube or Kubeconfig, else
// the pod's service account).
func Example_schemes() {
	for _, target := range []string{
		"dns:///backend.default.svc.cluster.local:9090",                 // A/AAAA of a headless Service
		"srv:///_grpc._tcp.backend.default.svc.cluster.local",           // SRV of its named port "grpc"
		"statefulset:///backend.backend.default.svc.cluster.local:9090", // backend-0.backend…, backend-1.backend…
		"kubernetes:///backend.default:grpc",                            // its EndpointSlices
		"static:///10.0.0.1:9090,10.0.0.2:9090",                         // a fixed list
	} {
		spec, err := discovery.ParseSpec(target)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", spec.QType, spec.Query())
	}
	// Output:
	// dns: backend.default.svc.cluster.local
	// srv: _grpc._tcp.backend.default.svc.cluster.local
	// statefulset: _grpc._tcp.backend.default.svc.cluster.local -> backend-<i>.backend.default.svc.cluster.local
	// kubernetes: EndpointSlices kubernetes.io/service-name=backend in namespace default, port grpc
	// static: 10.0.0.1:9090,10.0.0.2:9090
}

// A static:/// target dialed for real: the call reaches the one server.
func ExampleBuilders() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: "backend-0"}))
	go srv.Serve(lis)
	defer srv.Stop()

	cc, err := grpc.NewClient("static:///"+lis.Addr().String(),
		grpc.WithResolvers(discovery.Builders(discovery.Options{})...),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	resp, err := knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(context.Background(), &knowingnodev1.GetIdentityRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetIdentity().GetPodName())
	// Output: backend-0
}

// Three clients dialing one target share its discovery loop; OnChange sees
// each state of it once, with every endpoint, ready or not (bin/load marks
// its pods' lifecycle so).
func ExampleOptions_onChange() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{PodName: "backend-0"}))
	go srv.Serve(lis)
	defer srv.Stop()

	var mu sync.Mutex
	var states []discovery.State
	builders := discovery.Builders(discovery.Options{OnChange: func(_ string, st discovery.State) {
		mu.Lock()
		defer mu.Unlock()
		states = append(states, st)
	}})
	var ccs []*grpc.ClientConn
	for range 3 {
		cc, err := grpc.NewClient("static:///"+lis.Addr().String(), grpc.WithResolvers(builders...),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		if _, err := knowingnodev1.NewIdentityServiceClient(cc).GetIdentity(context.Background(), &knowingnodev1.GetIdentityRequest{}); err != nil {
			log.Fatal(err)
		}
		ccs = append(ccs, cc)
	}
	for _, cc := range ccs {
		cc.Close() // the last one stops the loop, and waits for OnChange
	}
	fmt.Printf("%d state for 3 clients: version %d, %d endpoint\n", len(states), states[0].Version, len(states[0].Endpoints))
	// Output: 1 state for 3 clients: version 1, 1 endpoint
}

// A balancer reads what discovery knew of each address: its zone, node and
// conditions for a kubernetes:/// target.
func ExampleEndpointOf() {
	st := discovery.ResolverState([]discovery.Endpoint{
		{Addr: "10.0.0.1:9090", Slice: discovery.SliceInfo{Known: true, Ready: true, Zone: "zone-a"}},
		{Addr: "10.0.0.2:9090", Slice: discovery.SliceInfo{Known: true, Ready: false, Zone: "zone-b"}}, // not ready: left out
	})
	for _, a := range st.Addresses {
		ep, _ := discovery.EndpointOf(a)
		fmt.Println(a.Addr, ep.Slice.Zone)
	}
	_, ok := discovery.EndpointOf(resolver.Address{Addr: "10.0.0.3:9090"})
	fmt.Println(ok)
	// Output:
	// 10.0.0.1:9090 zone-a
	// false
}
