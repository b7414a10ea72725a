package balancing

import (
	"strings"
	"testing"
	"time"

	v3orcapb "github.com/cncf/xds/go/xds/data/orca/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// TestServiceConfig: every policy's config is one grpc-go accepts (a
// client refuses a default service config it cannot parse), and a name
// that is not a policy is refused naming the policies.
func TestServiceConfig(t *testing.T) {
	for _, p := range Policies {
		sc, err := ServiceConfig(p, Options{BlackoutPeriod: 250 * time.Millisecond, WeightUpdatePeriod: 100 * time.Millisecond, HealthCheck: true})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		cc, err := grpc.NewClient("passthrough:///127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
		if err != nil {
			t.Errorf("%s: grpc-go refuses %s: %v", p, sc, err)
			continue
		}
		cc.Close()
		if (p == PickFirst) == strings.Contains(sc, "healthCheckConfig") {
			t.Errorf("%s: %s: health checking on every policy but pick_first", p, sc)
		}
	}
	if sc, _ := ServiceConfig(RingHash, Options{}); !strings.Contains(sc, `"requestHashHeader":"`+HashHeader+`"`) {
		t.Errorf("ring_hash: %s hashes no header", sc)
	}
	if _, err := ServiceConfig("random", Options{}); err == nil || !strings.Contains(err.Error(), "least_request") {
		t.Errorf("an unknown policy: %v, want an error naming the policies", err)
	}
}

func TestParseTrailer(t *testing.T) {
	b, err := proto.Marshal(&v3orcapb.OrcaLoadReport{CpuUtilization: 0.5, ApplicationUtilization: 0.25, RpsFractional: 100, Eps: 10})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := ParseTrailer(metadata.Pairs(TrailerKey, string(b)))
	if !ok || r != (Report{CPUUtilization: 0.5, ApplicationUtilization: 0.25, QPS: 100, EPS: 10}) {
		t.Fatalf("%+v, %v", r, ok)
	}
	// weighted_round_robin: rps / (application utilization + eps/rps).
	if w := r.Weight(); w < 285.7 || w > 285.8 {
		t.Errorf("weight %g, want 100/(0.25+0.1) = 285.7", w)
	}
	if w := (Report{CPUUtilization: 0.5, QPS: 100}).Weight(); w != 200 {
		t.Errorf("weight on CPU %g, want 200", w)
	}
	if w := (Report{CPUUtilization: 0.5}).Weight(); w != 0 {
		t.Errorf("weight without a rate %g, want 0 (ignored)", w)
	}
	for _, md := range []metadata.MD{nil, metadata.Pairs(TrailerKey, "\xff\xff")} {
		if _, ok := ParseTrailer(md); ok {
			t.Errorf("%v: a report", md)
		}
	}
}
