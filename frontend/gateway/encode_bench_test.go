package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/identity"
)

// podIdentity is the identity a pod of the chart reports: every field the
// Downward API fills, its sources, labels, annotations, build and start.
func podIdentity(name string, i int, tier knowingnodev1.Tier) *knowingnodev1.Identity {
	src := knowingnodev1.Source_SOURCE_DOWNWARD_API
	pod := fmt.Sprintf("%s-%d", name, i)
	return &knowingnodev1.Identity{
		PodName: pod, PodNamespace: "knowingnode", PodIp: fmt.Sprintf("10.244.%d.%d", i%4, 10+i),
		PodIps: []string{fmt.Sprintf("10.244.%d.%d", i%4, 10+i), fmt.Sprintf("fd00:10:244:%d::%x", i%4, 10+i)},
		PodUid: fmt.Sprintf("0d6f1a2e-7b7c-4c55-9d9a-3f1e8c2b%04x", i), NodeName: fmt.Sprintf("node-%c", 'a'+i%4),
		NodeIp: fmt.Sprintf("172.18.0.%d", 2+i%4), ServiceAccount: name, Hostname: pod,
		Labels: map[string]string{"app.kubernetes.io/name": "knowingnode", "app.kubernetes.io/component": name,
			"app.kubernetes.io/instance": "knowingnode", "apps.kubernetes.io/pod-index": fmt.Sprint(i),
			"controller-revision-hash": name + "-5d4f8c7b9", "statefulset.kubernetes.io/pod-name": pod,
			"topology.kubernetes.io/zone": fmt.Sprintf("zone-%c", 'a'+i%3), "topology.kubernetes.io/region": "region-1"},
		Annotations: map[string]string{"kubectl.kubernetes.io/default-container": name,
			"kubernetes.io/config.seen": "2025-01-02T03:04:05.678901234Z", "kubernetes.io/config.source": "api"},
		CpuLimitMillicores: 500, MemoryLimitBytes: 128 << 20,
		StartTime:        timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.UTC)),
		Build:            &knowingnodev1.BuildInfo{Version: "v0.9.0", Revision: "66902bc0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6", GoVersion: "go1.26.8"},
		Tier:             tier,
		ServingAddresses: []string{"grpc=0.0.0.0:9090", "health=0.0.0.0:9090", "metrics=0.0.0.0:9091"},
		Sources: map[string]knowingnodev1.Source{"pod_name": src, "pod_namespace": src, "pod_ip": src, "pod_ips": src,
			"pod_uid": src, "node_name": src, "node_ip": src, "service_account": src, "labels": src, "annotations": src,
			"cpu_limit_millicores": src, "memory_limit_bytes": src, "zone": src, "region": src},
		Zone: fmt.Sprintf("zone-%c", 'a'+i%3), Region: "region-1",
	}
}

// fanOutReply is an EACH fan-out's reply over n backends, as the fan-out
// builds it: the frontend's identity, one result per backend (the backend's
// identity, the same pointer from one reply to the next while it does not
// change, as the connection's codec hands it out), the summary and the
// discovery state.
func fanOutReply(n int, ids []*knowingnodev1.Identity) *knowingnodev1.FanOutResponse {
	sum := &knowingnodev1.FanOutSummary{Total: int32(n), Ok: int32(n), ByCode: map[string]int32{"OK": int32(n)},
		ByNode: map[string]int32{}, ByPod: map[string]int32{}, ByZone: map[string]int32{},
		LatencyMin: durationpb.New(211 * time.Microsecond), LatencyP50: durationpb.New(345 * time.Microsecond),
		LatencyP99: durationpb.New(2*time.Millisecond + 17), LatencyMax: durationpb.New(2*time.Millisecond + 17),
		Duration: durationpb.New(2345678 * time.Nanosecond)}
	disc := &knowingnodev1.TargetState{Name: "backends", Spec: "dns:///backend.knowingnode.svc.cluster.local:9090",
		Mode: knowingnodev1.DiscoveryMode_DISCOVERY_MODE_DNS, Query: "backend.knowingnode.svc.cluster.local.",
		LastRefresh: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)),
		LastSuccess: timestamppb.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)), Refreshes: 1234}
	resp := &knowingnodev1.FanOutResponse{Frontend: podIdentity("frontend", 0, knowingnodev1.Tier_TIER_FRONTEND),
		Target: "backends", Mode: knowingnodev1.FanOutMode_FAN_OUT_MODE_EACH, Summary: sum, Discovery: disc}
	for i := range n {
		id := ids[i]
		addr := fmt.Sprintf("%s:9090", id.PodIp)
		resp.Results = append(resp.Results, &knowingnodev1.BackendResult{Address: addr,
			DnsName: "backend.knowingnode.svc.cluster.local.", Identity: id, Code: "OK", Calls: 1,
			Latency: durationpb.New(time.Duration(211+37*i) * time.Microsecond)})
		sum.ByNode[id.NodeName]++
		sum.ByPod[id.PodName]++
		sum.ByZone[id.Zone]++
		disc.Endpoints = append(disc.Endpoints, &knowingnodev1.Endpoint{Address: addr, DnsName: "backend.knowingnode.svc.cluster.local."})
	}
	return resp
}

// balancedReply is fanOutReply as a BALANCED fan-out under
// weighted_round_robin makes it: the policy, and each result's and pod's
// ORCA load (doubles) and weight.
func balancedReply(n int, ids []*knowingnodev1.Identity) *knowingnodev1.FanOutResponse {
	resp := fanOutReply(n, ids)
	resp.Mode, resp.Policy = knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED, "weighted_round_robin"
	resp.Summary.LoadByPod = map[string]*knowingnodev1.BackendLoad{}
	for i, r := range resp.Results {
		r.Calls = int32(10 + i)
		r.Load = &knowingnodev1.BackendLoad{Reports: r.Calls, CpuUtilization: 0.031634851504125967, ApplicationUtilization: 0.61 + float64(i)/7,
			Rps: 245.3 + float64(i), Weight: 400.00000000000006, WeightShare: 1 / float64(n)}
		resp.Summary.LoadByPod[r.Identity.PodName] = r.Load
	}
	return resp
}

func backendIdentities(n int) []*knowingnodev1.Identity {
	ids := make([]*knowingnodev1.Identity, n)
	for i := range ids {
		ids[i] = podIdentity("backend", i, knowingnodev1.Tier_TIER_BACKEND)
	}
	return ids
}

// gatewayMarshaler is the marshaler New installs.
func gatewayMarshaler(tb testing.TB, fixed ...proto.Message) runtime.Marshaler {
	m, err := newFixedMarshaler(&runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{}}, fixed)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// spliceReply encodes resp as the gRPC path does (fanout.encodeResponse):
// the reply without its results through the proto codec, then each result
// without its identity, the identity's bytes as the backend sent them
// (raw) spliced in.
func spliceReply(resp *knowingnodev1.FanOutResponse, raw map[*knowingnodev1.Identity][]byte) ([]byte, error) {
	var o proto.MarshalOptions
	shell := &knowingnodev1.FanOutResponse{Frontend: resp.Frontend, Target: resp.Target, Mode: resp.Mode, Summary: resp.Summary, Discovery: resp.Discovery, Policy: resp.Policy}
	out, err := o.MarshalAppend(make([]byte, 0, 1024+512*len(resp.Results)), shell)
	if err != nil {
		return nil, err
	}
	var (
		bare    knowingnodev1.BackendResult
		scratch []byte
	)
	for _, r := range resp.Results {
		bare.Address, bare.DnsName, bare.Code, bare.Message, bare.Latency, bare.Calls = r.Address, r.DnsName, r.Code, r.Message, r.Latency, r.Calls
		bare.Load, bare.HashKeys = r.Load, r.HashKeys
		if scratch, err = o.MarshalAppend(scratch[:0], &bare); err != nil {
			return nil, err
		}
		id := raw[r.Identity]
		out = protowire.AppendTag(out, 4, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(len(scratch)+protowire.SizeTag(3)+protowire.SizeBytes(len(id))))
		out = append(out, scratch...)
		out = protowire.AppendTag(out, 3, protowire.BytesType)
		out = protowire.AppendBytes(out, id)
	}
	return out, nil
}

// BenchmarkMarshalFanOut encodes an EACH fan-out's reply over 3 and 30
// backends as the gateway does for GET /v1/fanout ("json"; "json-balanced" a
// BALANCED one with its loads, beside JSONPb's "protojson-balanced"), beside what the
// gRPC path pays for the same reply: "splice" as fanout.EncodeReply encodes
// it (the backends' identity bytes spliced in, see spliceReply), "proto" the
// proto codec's Marshal.
func BenchmarkMarshalFanOut(b *testing.B) {
	for _, n := range []int{3, 30} {
		resp := fanOutReply(n, backendIdentities(n))
		raw := map[*knowingnodev1.Identity][]byte{}
		for _, r := range resp.Results {
			raw[r.Identity], _ = proto.Marshal(r.Identity)
		}
		if b, _ := spliceReply(resp, raw); !bytes.Equal(b, must(proto.Marshal(resp))) {
			var got knowingnodev1.FanOutResponse
			if err := proto.Unmarshal(b, &got); err != nil || !proto.Equal(&got, resp) {
				panic("spliceReply does not encode the reply")
			}
		}
		b.Run(fmt.Sprintf("N=%d/splice", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := spliceReply(resp, raw); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("N=%d/json", n), func(b *testing.B) {
			m := gatewayMarshaler(b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
		balanced := balancedReply(n, backendIdentities(n))
		b.Run(fmt.Sprintf("N=%d/json-balanced", n), func(b *testing.B) {
			m := gatewayMarshaler(b)
			sameAsJSONPb(b, m, reference, balanced, "a BALANCED reply")
			if _, ok := m.(*fixedMarshaler).fanOut.marshal(balanced); !ok {
				b.Fatal("the fan-out's encoder declined a BALANCED reply")
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Marshal(balanced); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("N=%d/protojson-balanced", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := reference.Marshal(balanced); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("N=%d/proto", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := proto.Marshal(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMarshalFanOutStream encodes the lines of GET /v1/fanout:stream
// over 3 backends: a line per result, then the summary.
func BenchmarkMarshalFanOutStream(b *testing.B) {
	resp := fanOutReply(3, backendIdentities(3))
	done := proto.Clone(resp).(*knowingnodev1.FanOutResponse)
	done.Results = nil
	var lines []*knowingnodev1.FanOutStreamResponse
	for _, r := range resp.Results {
		lines = append(lines, &knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Result{Result: r}})
	}
	lines = append(lines, &knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Done{Done: done}})
	m := ndjson{gatewayMarshaler(b).(*fixedMarshaler)}
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			// As runtime.ForwardResponseStream hands each message over.
			if _, err := m.Marshal(map[string]any{"result": l}); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRESTFanOut serves GET /v1/fanout through the whole HTTP handler,
// metrics on, with a fan-out service that answers a built reply at once:
// what REST adds to a fan-out, over 3 and 30 backends.
func BenchmarkRESTFanOut(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			resp := fanOutReply(n, backendIdentities(n))
			ids := identity.NewServer(resp.Frontend)
			h, err := New(b.Context(), Options{Identity: ids, FanOut: fixedFanOut{resp: resp},
				Registerer: prometheus.NewRegistry(), Fixed: []proto.Message{ids.Response()}})
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/v1/fanout", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
