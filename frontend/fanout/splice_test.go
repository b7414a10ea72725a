package fanout

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/knowingnode/knowingnode/backend/loadreport"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// EncodeReply's bytes decode to the very response it was given, EACH and
// BALANCED, with every identity spliced from its backend's bytes; and the
// field numbers and the fields it copies are those of the descriptor, so a
// field added to the messages fails here rather than going missing.
func TestEncodeReplyIsProtoMarshal(t *testing.T) {
	br := (&knowingnodev1.BackendResult{}).ProtoReflect().Descriptor()
	fr := (&knowingnodev1.FanOutResponse{}).ProtoReflect().Descriptor()
	if n := br.Fields().ByName("identity").Number(); n != fieldIdentity || br.Fields().Len() != 9 {
		t.Fatalf("BackendResult: identity is field %d, %d fields; the splice copies 8 fields beside identity (field %d)", n, br.Fields().Len(), fieldIdentity)
	}
	if n := fr.Fields().ByName("results").Number(); n != fieldResults || fr.Fields().Len() != 7 {
		t.Fatalf("FanOutResponse: results is field %d, %d fields; the splice copies 6 fields beside results (field %d)", n, fr.Fields().Len(), fieldResults)
	}
	// The pods report their load, so that BALANCED's results carry it.
	rep := loadreport.New(loadreport.Config{Interval: 50 * time.Millisecond})
	t.Cleanup(rep.Close)
	s, _ := newService(t, Options{}, addrs(startPods(t, 3, rep.ServerOptions()...))...)
	waitReady(t, s.targets["backends"].pool)
	wrr, ring := balancedReq(30), balancedReq(30)
	wrr.Policy, ring.Policy, ring.HashKeys = "weighted_round_robin", "ring_hash", []string{"a", "b", "c", "d"}
	for _, req := range []*knowingnodev1.FanOutRequest{{}, balancedReq(30), wrr, ring} {
		resp, err := s.FanOut(t.Context(), req)
		if err != nil || resp.Summary.Ok != resp.Summary.Total {
			t.Fatalf("%v: %v %v", req, err, resp.GetSummary())
		}
		for _, r := range resp.Results {
			if identityBytes(s.targets["backends"].pool, r) == nil {
				t.Errorf("%v: result %s has no bytes to splice", req.Mode, r.Address)
			}
		}
		if req.Mode == knowingnodev1.FanOutMode_FAN_OUT_MODE_BALANCED && (resp.Results[0].Load == nil || req == ring && resp.Results[0].HashKeys == nil) {
			t.Errorf("%s: result %v without its load or keys", req.Policy, resp.Results[0])
		}
		b, ok, err := s.EncodeReply(resp)
		if !ok || err != nil {
			t.Fatalf("EncodeReply: %v %v", ok, err)
		}
		var got knowingnodev1.FanOutResponse
		if err := proto.Unmarshal(b.Materialize(), &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, resp) {
			t.Errorf("%v: spliced encoding decodes to\n%v\nwant\n%v", req.Mode, &got, resp)
		}
	}
	if _, ok, _ := s.EncodeReply(&knowingnodev1.ListTargetsResponse{}); ok {
		t.Error("EncodeReply took a message that is no FanOutResponse")
	}
}

// BenchmarkEncodeReply is what encoding a 30-backend fan-out's reply costs,
// spliced against the proto codec's Marshal.
func BenchmarkEncodeReply(b *testing.B) {
	s, _ := newService(b, Options{}, addrs(startPods(b, 30))...)
	resp, err := s.FanOut(b.Context(), &knowingnodev1.FanOutRequest{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("spliced", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.EncodeReply(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
