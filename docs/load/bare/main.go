// Command bare is the reference the load run compares the backend with: a
// plain grpc-go server answering GetIdentity by building the identity anew
// on every call, as a straightforward implementation would, with no
// interceptors, health, metrics or keepalive policy.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

type server struct {
	knowingnodev1.UnimplementedIdentityServiceServer
}

func (server) GetIdentity(context.Context, *knowingnodev1.GetIdentityRequest) (*knowingnodev1.GetIdentityResponse, error) {
	return &knowingnodev1.GetIdentityResponse{Identity: &knowingnodev1.Identity{
		PodName:        os.Getenv("POD_NAME"),
		PodNamespace:   os.Getenv("POD_NAMESPACE"),
		PodIp:          os.Getenv("POD_IP"),
		PodIps:         []string{os.Getenv("POD_IP")},
		PodUid:         os.Getenv("POD_UID"),
		NodeName:       os.Getenv("NODE_NAME"),
		NodeIp:         os.Getenv("NODE_IP"),
		ServiceAccount: os.Getenv("SERVICE_ACCOUNT"),
		Hostname:       os.Getenv("HOSTNAME"),
		Tier:           knowingnodev1.Tier_TIER_BACKEND,
	}}, nil
}

func main() {
	addr := flag.String("grpc-addr", "127.0.0.1:19190", "listen address")
	listeners := flag.Int("listeners", 1, "how many listeners on grpc-addr's host, each on a port the kernel picks (more than 1: grpc-addr's port is ignored), so that a few processes stand for many endpoints")
	addrFile := flag.String("addr-file", "", "write the listening addresses here, one a line, once all listen")
	flag.Parse()
	s := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(s, server{})
	reflection.Register(s)
	var lis []net.Listener
	for range *listeners {
		a := *addr
		if *listeners > 1 {
			host, _, err := net.SplitHostPort(a)
			if err != nil {
				log.Fatal(err)
			}
			a = net.JoinHostPort(host, "0")
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			log.Fatal(err)
		}
		lis = append(lis, l)
	}
	if *addrFile != "" {
		var b strings.Builder
		for _, l := range lis {
			fmt.Fprintln(&b, l.Addr())
		}
		// Written whole, then renamed: a reader never sees half a list.
		if err := os.WriteFile(*addrFile+".tmp", []byte(b.String()), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(*addrFile+".tmp", *addrFile); err != nil {
			log.Fatal(err)
		}
	}
	errs := make(chan error, len(lis))
	for _, l := range lis {
		go func() { errs <- s.Serve(l) }()
	}
	log.Fatal(<-errs)
}
