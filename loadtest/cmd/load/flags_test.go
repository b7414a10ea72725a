package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every flag's bad values are refused before anything starts, in one line
// naming the flag, the value and what the flag accepts.
func TestParseFlagsRefusesEachBadValue(t *testing.T) {
	ok := []string{"--target", "127.0.0.1:9090"}
	for _, tc := range []struct {
		flag  string
		args  []string
		value string // as the message quotes it
	}{
		{"target", []string{"--target", ""}, `""`},
		{"target", []string{"--target", "backend"}, `"backend"`},                               // no port
		{"target", []string{"--target", "backend:0"}, `"backend:0"`},                           // port out of range
		{"target", []string{"--target", "static:///"}, `"static:///"`},                         // no address
		{"target", []string{"--target", "static:///a:1,b"}, `"static:///a:1,b"`},               // one without a port
		{"target", []string{"--target", "http://127.0.0.1:8080"}, `"http://127.0.0.1:8080"`},   // a URL for gRPC
		{"target", []string{"--target", "srv:///_grpc._tcp.web.ns.svc.cluster.local"}, `"srv`}, // SRV without --refresh
		{"target", []string{"--target", "bogus://x:1"}, `"bogus://x:1"`},
		{"target", []string{"--target", "ftp://x:1", "--call", "rest"}, `"ftp://x:1"`},
		{"target", []string{"--target", "http://:8080", "--call", "rest"}, `"http://:8080"`},
		{"target", []string{"--target", "http://x:99999", "--call", "rest"}, `"http://x:99999"`},
		{"target", []string{"--target", "static:///a:1", "--refresh", "1s"}, `"static:///a:1"`},
		{"call", append(ok, "--call", "grpc"), `"grpc"`},
		{"rate", append(ok, "--rate", "-5"), `"-5"`},
		{"rate", append(ok, "--rate", "NaN"), `"NaN"`},
		{"rate", append(ok, "--rate", "+Inf"), `"+Inf"`},
		{"rate", append(ok, "--rate", "2e6"), `"2e+06"`},
		{"rate", append(ok, "--rate", "fast"), `"fast"`},
		{"concurrency", append(ok, "--concurrency", "0"), `"0"`},
		{"concurrency", append(ok, "--concurrency", "10001"), `"10001"`},
		{"duration", append(ok, "--duration", "0s"), `"0s"`},
		{"duration", append(ok, "--duration", "-1s"), `"-1s"`},
		{"duration", append(ok, "--duration", "25h"), `"25h0m0s"`},
		{"duration", append(ok, "--duration", "banana"), `"banana"`},
		{"count", append(ok, "--count", "-1"), `"-1"`},
		{"warmup", append(ok, "--warmup", "-1s"), `"-1s"`},
		{"warmup", append(ok, "--warmup", "25h"), `"25h0m0s"`},
		{"window", append(ok, "--window", "1ms"), `"1ms"`},
		{"window", append(ok, "--window", "2h"), `"2h0m0s"`},
		{"timeout", append(ok, "--timeout", "0s"), `"0s"`},
		{"timeout", append(ok, "--timeout", "2h"), `"2h0m0s"`},
		{"connections", append(ok, "--connections", "0"), `"0"`},
		{"connections", append(ok, "--connections", "1001"), `"1001"`},
		{"refresh", append(ok, "--refresh", "10ms"), `"10ms"`},
		{"refresh", append(ok, "--refresh", "-1s"), `"-1s"`},
		{"refresh", append(ok, "--refresh", "2h"), `"2h0m0s"`},
		{"balancing", append(ok, "--balancing", "random"), `"random"`},
		{"fanout-mode", append(ok, "--fanout-mode", "all"), `"all"`},
		{"fanout-target", append(ok, "--fanout-target", "Backends!"), `"Backends!"`},
		{"fanout-count", append(ok, "--fanout-count", "-1"), `"-1"`},
		{"fanout-count", append(ok, "--fanout-count", "10001"), `"10001"`},
		{"path", append(ok, "--path", "v1/fanout"), `"v1/fanout"`},
		{"plot", append(ok, "--plot", "x", "--json", "x"), `"x"`},
	} {
		_, err := parseFlags(tc.args)
		if err == nil {
			t.Errorf("%v: accepted", tc.args)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || strings.Contains(msg, "<nil>") {
			t.Errorf("%v: %q is not one clean line", tc.args, msg)
		}
		if !strings.Contains(msg, "-"+tc.flag) || !strings.Contains(msg, tc.value) || !strings.Contains(msg, accepted[tc.flag]) {
			t.Errorf("%v: %q does not name --%s, its value %s and what it accepts (%s)", tc.args, msg, tc.flag, tc.value, accepted[tc.flag])
		}
	}
}

func TestParseFlagsAcceptsGoodValues(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--target", "127.0.0.1:9090"},
		{"--target", "[::1]:9090", "--rate", "0", "--count", "10", "--duration", "0s"},
		{"--target", "dns:///web.ns.svc.cluster.local:9090", "--refresh", "1s", "--balancing", "round_robin"},
		{"--target", "srv:///_grpc._tcp.web.ns.svc.cluster.local", "--refresh", "1s"},
		{"--target", "static:///a:1,b:2", "--call", "fanout", "--fanout-mode", "BALANCED", "--fanout-count", "10"},
		{"--target", "passthrough:///127.0.0.1:9090"},
		{"--target", "127.0.0.1:8080", "--call", "rest"},
		{"--target", "https://frontend.example/", "--call", "rest", "--path", "/v1/identity"},
		{"--target", "127.0.0.1:9090", "--rate", "1", "--duration", "1s", "--plot", filepath.Join(dir, "p.png"), "--json", "-"},
	} {
		if _, err := parseFlags(args); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
