// Command bare is the reference the load run compares the backend with: a
// plain grpc-go server answering GetIdentity by building the identity anew
// on every call, as a straightforward implementation would, with no
// interceptors, health, metrics or keepalive policy.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"

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
	flag.Parse()
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := grpc.NewServer()
	knowingnodev1.RegisterIdentityServiceServer(s, server{})
	reflection.Register(s)
	log.Fatal(s.Serve(lis))
}
