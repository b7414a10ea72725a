package gateway

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// reference is what the gateway wrote before the fan-out's encoder: JSONPb
// with the gateway's options, every message encoded afresh.
var reference = &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{}}

// sameAsJSONPb marshals v with m and with JSONPb (opts), and fails unless
// both give the same bytes, or both an error.
func sameAsJSONPb(t testing.TB, m runtime.Marshaler, ref *runtime.JSONPb, v any, what string) {
	t.Helper()
	got, gotErr := m.Marshal(v)
	want, wantErr := ref.Marshal(v)
	if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got  %q (%v)\n want %q (%v)", what, got, gotErr, want, wantErr)
	}
}

// streamMessages are the messages of the fan-out's stream for resp: a
// result each, then the rest, as runtime.ForwardResponseStream hands them
// to the marshaler.
func streamMessages(resp *knowingnodev1.FanOutResponse) []any {
	var out []any
	for _, r := range resp.Results {
		out = append(out, map[string]any{"result": &knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Result{Result: r}}})
	}
	done := &knowingnodev1.FanOutResponse{Frontend: resp.Frontend, Target: resp.Target, Mode: resp.Mode, Summary: resp.Summary, Discovery: resp.Discovery}
	return append(out, map[string]any{"result": &knowingnodev1.FanOutStreamResponse{Event: &knowingnodev1.FanOutStreamResponse_Done{Done: done}}})
}

// gen makes fan-out replies of every shape: identities shared between
// results and replies, copies of them, ones differing from them in one
// field, empty and missing ones; failed results; strings with quotes,
// escapes, control characters, HTML's characters, U+2028, non-ASCII and
// (rarely) invalid UTF-8; latencies of every length, negative, and out of
// protojson's range; unknown enum values.
type gen struct {
	r        *rand.Rand
	ids      []*knowingnodev1.Identity
	variants []variant
}

func newGen(seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), variants: identityVariants()}
	for i := range 6 {
		g.ids = append(g.ids, podIdentity("backend", i, knowingnodev1.Tier_TIER_BACKEND))
	}
	g.ids = append(g.ids, &knowingnodev1.Identity{}, &knowingnodev1.Identity{PodName: g.str()})
	return g
}

var pieces = []string{"", "a", "backend-0", "10.244.1.7:9090", `"`, `\`, "\n", "\t\r\b\f", "\x00", "\x1f", "\x7f", "<", ">", "&",
	"</script>", "\u2028", "\u2029", "é", "日本", "🦀", "\ufffd", "u003c", `\u003c`, " ", "{}", "[,]", "OK", "UNAVAILABLE"}

func (g *gen) str() string {
	var b strings.Builder
	for range g.r.IntN(4) {
		b.WriteString(pieces[g.r.IntN(len(pieces))])
	}
	if g.r.IntN(2000) == 0 {
		b.WriteString("\xff") // invalid UTF-8: JSONPb refuses, so must the encoder
	}
	return b.String()
}

func (g *gen) duration() *durationpb.Duration {
	switch n := g.r.IntN(100); {
	case n < 8:
		return nil
	case n < 16:
		return &durationpb.Duration{}
	case n < 30:
		return &durationpb.Duration{Seconds: -g.r.Int64N(10), Nanos: -g.r.Int32N(1e9)}
	case n < 31:
		return &durationpb.Duration{Seconds: g.r.Int64N(2), Nanos: -g.r.Int32N(1e9)} // signs may disagree
	case n < 32:
		return &durationpb.Duration{Seconds: []int64{315576000000, 315576000001, -315576000000}[g.r.IntN(3)], Nanos: int32(g.r.IntN(3)) * 999999999}
	case n < 50:
		return &durationpb.Duration{Seconds: g.r.Int64N(3), Nanos: int32(g.r.IntN(1000)) * []int32{1, 1000, 1000000}[g.r.IntN(3)]}
	}
	return durationpb.New(time.Duration(g.r.Int64N(int64(5 * time.Second))))
}

// identity is one of the pool (shared pointer), a copy of one, a copy with
// one field changed, a new one, or none.
func (g *gen) identity() *knowingnodev1.Identity {
	base := g.ids[g.r.IntN(len(g.ids))]
	switch g.r.IntN(6) {
	case 0:
		return nil
	case 1:
		return proto.Clone(base).(*knowingnodev1.Identity)
	case 2:
		id := proto.Clone(base).(*knowingnodev1.Identity)
		g.variants[g.r.IntN(len(g.variants))].change(id.ProtoReflect())
		return id
	case 3:
		id := &knowingnodev1.Identity{PodName: g.str(), NodeName: g.str(), Zone: g.str(), Tier: knowingnodev1.Tier(g.r.IntN(4)),
			Labels: map[string]string{g.str(): g.str(), g.str(): g.str()}, Sources: map[string]knowingnodev1.Source{g.str(): knowingnodev1.Source(g.r.IntN(5))}}
		if g.r.IntN(2) == 0 {
			id.StartTime = &timestamppb.Timestamp{Seconds: g.r.Int64N(1 << 35), Nanos: g.r.Int32N(1e9)}
		}
		if g.r.IntN(4) == 0 {
			g.ids = append(g.ids, id) // seen again later
		}
		return id
	}
	return base
}

func (g *gen) result() *knowingnodev1.BackendResult {
	r := &knowingnodev1.BackendResult{Address: g.str(), DnsName: g.str(), Latency: g.duration(), Calls: []int32{0, 1, 7, -3, 1 << 30}[g.r.IntN(5)]}
	if g.r.IntN(3) == 0 {
		r.Code, r.Message = []string{"UNAVAILABLE", "DEADLINE_EXCEEDED", "DRAINING", "NOT_SENT"}[g.r.IntN(4)], g.str()
	} else {
		r.Code, r.Identity = "OK", g.identity()
	}
	if g.r.IntN(2) == 0 {
		r.Load, r.HashKeys = g.load(), g.strs()
	}
	return r
}

// doubles are the values a load's fields take: protojson's formats
// ('f', 'e' below 1e-6 and from 1e21, the exponent's leading 0 dropped),
// -0, NaN and the infinities.
var doubles = []float64{0, 0, 1, 0.5, 0.031634851504125, 400.00000000000006, 1e-6, 9.99e-7, 1e-7, 1.5e-300, 1e20, 1e21, 123456789e20,
	-2.5, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64}

func (g *gen) double() float64 {
	if g.r.IntN(3) == 0 {
		return g.r.Float64() * []float64{1, 100, 1e4}[g.r.IntN(3)]
	}
	return doubles[g.r.IntN(len(doubles))]
}

// load is a pod's load, or none.
func (g *gen) load() *knowingnodev1.BackendLoad {
	if g.r.IntN(5) == 0 {
		return nil
	}
	return &knowingnodev1.BackendLoad{Reports: []int32{0, 1, 300, -1}[g.r.IntN(4)], CpuUtilization: g.double(),
		ApplicationUtilization: g.double(), Rps: g.double(), Eps: g.double(), Weight: g.double(), WeightShare: g.double()}
}

func (g *gen) loads() map[string]*knowingnodev1.BackendLoad {
	m := map[string]*knowingnodev1.BackendLoad{}
	for range g.r.IntN(4) {
		if l := g.load(); l != nil {
			m[g.str()] = l
		}
	}
	return m
}

func (g *gen) timestamp() *timestamppb.Timestamp {
	switch n := g.r.IntN(100); {
	case n < 10:
		return nil
	case n < 15:
		return &timestamppb.Timestamp{}
	case n < 17:
		return &timestamppb.Timestamp{Seconds: []int64{-62135596800, 253402300799, -62135596801, 253402300800, -1}[g.r.IntN(5)]}
	case n < 18:
		return &timestamppb.Timestamp{Seconds: 1, Nanos: []int32{-1, 1e9, 999999999}[g.r.IntN(3)]}
	case n < 50:
		return &timestamppb.Timestamp{Seconds: g.r.Int64N(1 << 34), Nanos: int32(g.r.IntN(1000)) * []int32{1, 1000, 1000000}[g.r.IntN(3)]}
	}
	return timestamppb.New(time.Unix(0, g.r.Int64N(1<<62)))
}

func (g *gen) strs() []string {
	var out []string
	for range g.r.IntN(3) {
		out = append(out, g.str())
	}
	return out
}

func (g *gen) counts() map[string]int32 {
	m := map[string]int32{}
	for range g.r.IntN(5) {
		m[g.str()] = []int32{0, 1, -1, 1 << 30, 17}[g.r.IntN(5)]
	}
	return m
}

func (g *gen) summary() *knowingnodev1.FanOutSummary {
	if g.r.IntN(6) == 0 {
		return nil
	}
	i32 := func() int32 { return []int32{0, 0, 1, 3, -2, 1<<31 - 1}[g.r.IntN(6)] }
	return &knowingnodev1.FanOutSummary{Total: i32(), Ok: i32(), Failed: i32(), ByNode: g.counts(), ByPod: g.counts(), ByCode: g.counts(),
		LatencyMin: g.duration(), LatencyP50: g.duration(), LatencyP99: g.duration(), LatencyMax: g.duration(), Duration: g.duration(),
		Draining: i32(), ByZone: g.counts(), NotSent: i32(), LoadByPod: g.loads()}
}

func (g *gen) discovery(n int) *knowingnodev1.TargetState {
	if g.r.IntN(6) == 0 {
		return nil
	}
	t := &knowingnodev1.TargetState{Name: g.str(), Spec: g.str(), Mode: knowingnodev1.DiscoveryMode(g.r.IntN(7)), Query: g.str(),
		DnsServer: g.str(), LastRefresh: g.timestamp(), LastSuccess: g.timestamp(), LastError: g.str(),
		Refreshes: []int64{0, 1, 1 << 40, -5}[g.r.IntN(4)], RefreshErrors: g.r.Int64N(3)}
	for range n {
		ep := &knowingnodev1.Endpoint{Address: g.str(), DnsName: g.str()}
		if g.r.IntN(2) == 0 {
			ep.Slice = &knowingnodev1.EndpointSliceInfo{Ready: g.r.IntN(2) == 0, Serving: g.r.IntN(2) == 0, Terminating: g.r.IntN(2) == 0,
				NodeName: g.str(), Zone: g.str(), Hostname: g.str(), TargetRef: g.str(), HintZones: g.strs(), HintNodes: g.strs(), Slices: g.strs()}
		}
		if g.r.IntN(100) == 0 {
			ep = nil // written {}, as protojson does
		}
		t.Endpoints = append(t.Endpoints, ep)
	}
	for range g.r.IntN(3) {
		t.Compare = append(t.Compare, &knowingnodev1.TargetComparison{Other: g.str(), Summary: g.str(), OnlyDns: g.strs(), OnlyApi: g.strs(), Agree: g.r.IntN(2) == 0})
	}
	return t
}

func (g *gen) response() *knowingnodev1.FanOutResponse {
	n := []int{0, 1, 3, 30}[g.r.IntN(4)]
	resp := &knowingnodev1.FanOutResponse{Frontend: g.identity(), Target: g.str(),
		Mode: knowingnodev1.FanOutMode([]int32{0, 1, 2, 42}[g.r.IntN(4)]), Summary: g.summary(), Discovery: g.discovery(n),
		Policy: []string{"", "round_robin", "weighted_round_robin", g.str()}[g.r.IntN(4)]}
	for range n {
		r := g.result()
		if g.r.IntN(200) == 0 {
			r = nil
		}
		resp.Results = append(resp.Results, r)
	}
	if g.r.IntN(4) == 0 { // as the fan-out builds them
		real := fanOutReply(n, append(g.ids, backendIdentities(n)...)[len(g.ids)-min(n, len(g.ids)):])
		resp.Summary, resp.Discovery = real.Summary, real.Discovery
	}
	return resp
}

// The gateway's encoding of a fan-out's reply, and of each line of its
// stream, is byte for byte JSONPb's, over many generated replies; the
// encoder, not JSONPb, wrote those it can.
func TestFanOutJSONIsJSONPb(t *testing.T) {
	m := gatewayMarshaler(t).(*fixedMarshaler)
	if m.fanOut == nil {
		t.Fatal("the fan-out's encoder is off: the gateway's options, or fanout.proto changed (see TestHandWrittenFieldsAreTheProtos)")
	}
	g := newGen(1)
	declined, long, loads := 0, 0, 0
	for i := range 2000 {
		resp := g.response()
		sameAsJSONPb(t, m, reference, resp, fmt.Sprintf("reply %d", i))
		for j, s := range streamMessages(resp) {
			sameAsJSONPb(t, m, reference, s, fmt.Sprintf("reply %d, stream line %d", i, j))
		}
		if _, ok := m.fanOut.marshal(resp); !ok {
			declined++
			if _, err := reference.Marshal(resp); err == nil {
				t.Fatalf("reply %d: declined, but JSONPb encodes it", i)
			}
		} else {
			if len(resp.Results) == 30 {
				long++
			}
			if carriesLoad(resp) {
				loads++
			}
		}
	}
	if loads < 500 {
		t.Errorf("encoded %d of 2000 replies carrying a BALANCED load: the generator should make more", loads)
	}
	if declined > 2000/4 || long < 200 {
		t.Errorf("declined %d of 2000 replies, encoded %d of 30 results: the generator should make fewer invalid ones", declined, long)
	}
	t.Logf("separator %q; declined %d of 2000 (JSONPb refuses them too); encoded %d of 30 results, %d carrying loads", m.fanOut.sep, declined, long, loads)
}

// carriesLoad: a BALANCED reply with the ORCA load of a result or a pod.
func carriesLoad(resp *knowingnodev1.FanOutResponse) bool {
	for _, r := range resp.GetResults() {
		if r.GetLoad() != nil {
			return true
		}
	}
	return len(resp.GetSummary().GetLoadByPod()) > 0
}

// The messages fanoutjson.go writes by hand have the fields it writes: a
// field added to fanout.proto or identity.proto, and not to fanoutjson.go
// (handWritten and the writer), fails here, and the gateway falls back to
// JSONPb for every fan-out's reply until it is.
func TestHandWrittenFieldsAreTheProtos(t *testing.T) {
	if err := checkHandWritten(); err != nil {
		t.Fatalf("update fanoutjson.go (and identityEqual, identityCache.hash): %v", err)
	}
}

// identityVariants are changes of one field each, at any depth, of an
// identity with every field set (podIdentity): each list grown, each map
// given a key and a changed value, each message cleared, each scalar
// changed.
func identityVariants() []variant {
	return variantsOf((&knowingnodev1.Identity{}).ProtoReflect().Descriptor(), "")
}

type variant struct {
	name   string
	change func(protoreflect.Message)
}

func variantsOf(md protoreflect.MessageDescriptor, prefix string) []variant {
	var out []variant
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			out = append(out, variant{name + "+", func(m protoreflect.Message) {
				m.Mutable(fd).List().Append(otherScalar(fd, protoreflect.ValueOfString("x"), 0))
			}})
		case fd.IsMap():
			out = append(out, variant{name + "[new]", func(m protoreflect.Message) {
				m.Mutable(fd).Map().Set(protoreflect.ValueOfString("zz-new").MapKey(), otherScalar(fd.MapValue(), fd.MapValue().Default(), 1))
			}}, variant{name + "[k]=", func(m protoreflect.Message) {
				mp := m.Mutable(fd).Map()
				key := protoreflect.ValueOfString("k").MapKey() // for an empty map
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool { key = k; return false })
				old := mp.Get(key)
				if !old.IsValid() {
					old = fd.MapValue().Default()
				}
				mp.Set(key, otherScalar(fd.MapValue(), old, 1))
			}})
		case fd.Message() != nil:
			out = append(out, variant{name + "=nil", func(m protoreflect.Message) { m.Clear(fd) }},
				variant{name + "={}", func(m protoreflect.Message) { m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message())) }})
			for _, sub := range variantsOf(fd.Message(), name+".") {
				out = append(out, variant{sub.name, func(m protoreflect.Message) { sub.change(m.Mutable(fd).Message()) }})
			}
		default:
			out = append(out, variant{name, func(m protoreflect.Message) { m.Set(fd, otherScalar(fd, m.Get(fd), 1)) }})
		}
	}
	return out
}

// otherScalar is a value of fd's kind other than v.
func otherScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value, d int64) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(v.String() + "x")
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(v.Int() + d)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(v.Int() + d))
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(v.Enum() + protoreflect.EnumNumber(d))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(!v.Bool())
	}
	panic(fmt.Sprintf("otherScalar: %v: add its kind", fd.FullName()))
}

// Two identities differing in any one field, at any depth, are never given
// each other's JSON: after one is cached, the other is encoded as itself.
// identityEqual sees every field of Identity: one added to fanout.proto
// and not compared there fails here.
func TestIdentityEqualSeesEveryField(t *testing.T) {
	base := podIdentity("backend", 3, knowingnodev1.Tier_TIER_BACKEND)
	fields := base.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !base.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("podIdentity leaves %s unset: set every field, so that each can differ", fields.Get(i).Name())
		}
	}
	vs := identityVariants()
	t.Logf("%d variants", len(vs))
	for _, v := range vs {
		other := proto.Clone(base).(*knowingnodev1.Identity)
		v.change(other.ProtoReflect())
		if identityEqual(base, other) || identityEqual(other, base) {
			t.Errorf("%s: identityEqual does not see it", v.name)
			continue
		}
		if !identityEqual(other, proto.Clone(other).(*knowingnodev1.Identity)) {
			t.Errorf("%s: identityEqual differs from a copy", v.name)
		}
		m := gatewayMarshaler(t)
		for _, id := range []*knowingnodev1.Identity{base, other, base, other} {
			resp := &knowingnodev1.FanOutResponse{Results: []*knowingnodev1.BackendResult{{Code: "OK", Identity: id}}}
			sameAsJSONPb(t, m, reference, resp, v.name)
			for _, s := range streamMessages(resp) {
				sameAsJSONPb(t, m, reference, s, v.name+" (stream)")
			}
		}
	}
}

// Neither the pointer nor the hash decides: an identity changed in place
// after its JSON was cached is encoded as it now is, and one filed under
// another's hash (as a collision would) is not answered for that other.
func TestIdentityCacheComparesContent(t *testing.T) {
	m := gatewayMarshaler(t).(*fixedMarshaler)
	id := podIdentity("backend", 1, knowingnodev1.Tier_TIER_BACKEND)
	resp := &knowingnodev1.FanOutResponse{Results: []*knowingnodev1.BackendResult{{Code: "OK", Identity: id}}}
	sameAsJSONPb(t, m, reference, resp, "first")
	id.Labels["topology.kubernetes.io/zone"] = "zone-z"
	sameAsJSONPb(t, m, reference, resp, "a label changed in place")
	id.PodName = "backend-9"
	sameAsJSONPb(t, m, reference, resp, "the pod name changed in place")

	// Identities differing in a map's contents alone hash alike (hash
	// leaves the maps' contents out): each is still answered as itself.
	c := m.fanOut.ids
	l1, l2 := podIdentity("backend", 1, 1), podIdentity("backend", 1, 1)
	l2.Labels["topology.kubernetes.io/zone"] = "zone-z"
	if c.hash(l1) != c.hash(l2) {
		t.Fatal("identities differing in a label's value hash apart: this test no longer tests a shared hash")
	}
	for range 2 {
		for _, id := range []*knowingnodev1.Identity{l1, l2} {
			sameAsJSONPb(t, m, reference, &knowingnodev1.FanOutResponse{Results: []*knowingnodev1.BackendResult{{Identity: id}}}, "a label's value")
		}
	}

	a, b := podIdentity("backend", 1, 1), podIdentity("backend", 1, 1)
	b.PodIp = "10.244.1.12"
	ea, err := c.encode(a)
	if err != nil {
		t.Fatal(err)
	}
	c.add(c.hash(b), ea) // a, filed as if b's hash were a's
	eb, err := c.get(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := protojson.Marshal(b)
	if eb == ea || !bytes.Equal(eb.plain, want) {
		t.Fatalf("b answered with %q, want %q", eb.plain, want)
	}
}

// The cache stays within its bounds in entries and bytes, keeps what is in
// use across generations, and does not keep an outsized identity.
func TestIdentityCacheBounded(t *testing.T) {
	c := newIdentityCache(protojson.MarshalOptions{})
	hot := podIdentity("backend", 0, 1)
	first, err := c.get(hot)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * identityCacheEntries {
		id := podIdentity("backend", i+1, 1)
		if _, err := c.get(id); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if e, _ := c.get(hot); e != first {
				t.Fatalf("after %d others: the identity in use was encoded again", i)
			}
		}
		if i%64 == 0 {
			entries, size := c.size()
			if entries > identityCacheEntries || size > identityCacheBytes {
				t.Fatalf("after %d: %d entries, %d bytes: over %d, %d", i, entries, size, identityCacheEntries, identityCacheBytes)
			}
		}
	}
	big := podIdentity("backend", 0, 1)
	big.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = strings.Repeat("x", identityCacheMaxEntry)
	e1, _ := c.get(big)
	e2, _ := c.get(big)
	if e1 == e2 {
		t.Error("an identity over identityCacheMaxEntry was kept")
	}
	// Bytes bound: few, large identities.
	c = newIdentityCache(protojson.MarshalOptions{})
	for i := range 4 * identityCacheBytes / identityCacheMaxEntry {
		id := podIdentity("backend", i, 1)
		id.Annotations["a"] = strings.Repeat("y", identityCacheMaxEntry/4-4<<10)
		e, err := c.get(id)
		if err != nil {
			t.Fatal(err)
		}
		if e2, _ := c.get(id); e2 != e {
			t.Fatalf("an identity of %d bytes was not kept", e.size)
		}
		if _, size := c.size(); size > identityCacheBytes {
			t.Fatalf("after %d: %d bytes, over %d", i, size, identityCacheBytes)
		}
	}
}

// size counts what the two generations hold, an entry carried from one
// into the other counted once.
func (c *identityCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*identityJSON]bool{}
	for _, g := range []map[uint64][]*identityJSON{c.cur, c.prev} {
		for _, chain := range g {
			for _, e := range chain {
				if !seen[e] {
					seen[e] = true
					entries++
					bytes += e.size
				}
			}
		}
	}
	return entries, bytes
}

// With other options than the gateway's, the encoder stands aside and the
// answers are JSONPb's with those options.
func TestFanOutJSONOtherOptions(t *testing.T) {
	for _, o := range []protojson.MarshalOptions{
		{EmitUnpopulated: true}, {UseProtoNames: true}, {UseEnumNumbers: true}, {EmitDefaultValues: true},
		{Multiline: true}, {Indent: "  "}, {UseProtoNames: true, EmitUnpopulated: true},
	} {
		ref := &runtime.JSONPb{MarshalOptions: o}
		m, err := newFixedMarshaler(&runtime.JSONPb{MarshalOptions: o}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.fanOut != nil {
			t.Errorf("%+v: the encoder does not write these options, yet is in use", o)
		}
		g := newGen(2)
		for i := range 50 {
			resp := g.response()
			sameAsJSONPb(t, m, ref, resp, fmt.Sprintf("%+v: reply %d", o, i))
			for _, s := range streamMessages(resp) {
				sameAsJSONPb(t, m, ref, s, fmt.Sprintf("%+v: reply %d stream", o, i))
			}
		}
	}
}

// Replies encoded from many goroutines at once, identities shared: each is
// JSONPb's (run with -race to check the cache's locking).
func TestFanOutJSONConcurrent(t *testing.T) {
	m := gatewayMarshaler(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			g := newGen(10 + uint64(w))
			g.ids = newGen(9).ids // the same contents, other pointers, for each
			for range 200 {
				resp := g.response()
				got, gotErr := m.Marshal(resp)
				want, wantErr := reference.Marshal(resp)
				if (gotErr != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
					t.Errorf("got %q (%v), want %q (%v)", got, gotErr, want, wantErr)
					return
				}
			}
		})
	}
	wg.Wait()
}

// scriptedFanOut answers FanOut with resp, and FanOutStream with its
// results then the rest.
type scriptedFanOut struct {
	knowingnodev1.UnimplementedFanOutServiceServer
	resp *knowingnodev1.FanOutResponse
}

func (s scriptedFanOut) FanOut(context.Context, *knowingnodev1.FanOutRequest) (*knowingnodev1.FanOutResponse, error) {
	return s.resp, nil
}

func (s scriptedFanOut) FanOutStream(_ *knowingnodev1.FanOutStreamRequest, st grpc.ServerStreamingServer[knowingnodev1.FanOutStreamResponse]) error {
	for _, m := range streamMessages(s.resp) {
		if err := st.Send(m.(map[string]any)["result"].(*knowingnodev1.FanOutStreamResponse)); err != nil {
			return err
		}
	}
	return nil
}

// Through the HTTP handler, GET /v1/fanout and GET /v1/fanout:stream answer
// JSONPb's bytes, the stream a line per message.
func TestFanOutJSONOverHTTP(t *testing.T) {
	resp := fanOutReply(3, backendIdentities(3))
	resp.Results[1] = &knowingnodev1.BackendResult{Address: "10.244.0.9:9090", Code: "UNAVAILABLE", Message: `connection refused <"x">`, Calls: 1}
	h, err := New(t.Context(), Options{Identity: fixedIdentity{}, FanOut: scriptedFanOut{resp: resp}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // encoded, then from the cache
		want, _ := reference.Marshal(resp)
		if rec := serve(h, http.MethodGet, "/v1/fanout"); rec.Code != http.StatusOK || rec.Body.String() != string(want) {
			t.Fatalf("GET /v1/fanout: %d\n got  %q\n want %q", rec.Code, rec.Body, want)
		}
		var lines bytes.Buffer
		for _, m := range streamMessages(resp) {
			b, _ := reference.Marshal(m)
			lines.Write(append(b, '\n'))
		}
		if rec := serve(h, http.MethodGet, "/v1/fanout:stream"); rec.Code != http.StatusOK || rec.Body.String() != lines.String() {
			t.Fatalf("GET /v1/fanout:stream: %d\n got  %q\n want %q", rec.Code, rec.Body, lines.String())
		}
	}
}
