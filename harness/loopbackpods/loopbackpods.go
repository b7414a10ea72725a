// Package loopbackpods starts identity servers the way a headless Service's
// pods look in DNS: each on an IP of its own (127.0.0.x), all on one port,
// since A records carry no port.
package loopbackpods

import (
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// Start starts n servers on 127.0.0.<first>, <first+1>, ... at one free
// port; pod i is named <prefix>-<i>, on node-a or node-b alternately. They
// stop when the test ends.
func Start(t testing.TB, n, first int, prefix string) (ips []string, port uint16) {
	t.Helper()
	if first < 2 || first+n > 255 {
		t.Fatalf("loopbackpods: 127.0.0.%d..%d is not a usable range", first, first+n-1)
	}
	for range 20 {
		lis := listenAll(t, n, first)
		if lis == nil {
			continue // the port was taken on one of the IPs: try another
		}
		port = uint16(lis[0].Addr().(*net.TCPAddr).Port)
		for i, l := range lis {
			srv := grpc.NewServer()
			knowingnodev1.RegisterIdentityServiceServer(srv, identity.NewServer(&knowingnodev1.Identity{
				PodName: fmt.Sprintf("%s-%d", prefix, i), NodeName: fmt.Sprintf("node-%c", 'a'+i%2),
			}))
			go srv.Serve(l)
			t.Cleanup(srv.Stop)
			ips = append(ips, fmt.Sprintf("127.0.0.%d", first+i))
		}
		return ips, port
	}
	t.Fatal("loopbackpods: no port free on every loopback IP")
	return nil, 0
}

// listenAll listens on one kernel-chosen port on all n IPs, or returns nil.
func listenAll(t testing.TB, n, first int) []net.Listener {
	l0, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:0", first))
	if err != nil {
		t.Fatal(err)
	}
	lis := []net.Listener{l0}
	port := l0.Addr().(*net.TCPAddr).Port
	for i := 1; i < n; i++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%d", first+i, port))
		if err != nil {
			for _, l := range lis {
				l.Close()
			}
			return nil
		}
		lis = append(lis, l)
	}
	return lis
}
