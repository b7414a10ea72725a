package fanout

import (
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// The codec's replies are what decoding gives, whether it decoded them or
// reused the last decode, in one buffer or several; a changed reply is
// decoded anew.
func TestIdentityCodec(t *testing.T) {
	c := newIdentityCodec()
	encode := func(id *knowingnodev1.Identity) []byte {
		b, err := proto.Marshal(&knowingnodev1.GetIdentityResponse{Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := encode(podIdentity(1)), encode(podIdentity(2))
	split := func(raw []byte) mem.BufferSlice {
		h := len(raw) / 2
		return mem.BufferSlice{mem.SliceBuffer(raw[:h]), mem.SliceBuffer(raw[h:])}
	}
	for _, tc := range []struct {
		name string
		data mem.BufferSlice
		want *knowingnodev1.Identity
	}{
		{"first", mem.BufferSlice{mem.SliceBuffer(a)}, podIdentity(1)},
		{"same again", mem.BufferSlice{mem.SliceBuffer(a)}, podIdentity(1)},
		{"same, in two buffers", split(a), podIdentity(1)},
		{"changed", mem.BufferSlice{mem.SliceBuffer(b)}, podIdentity(2)},
		{"changed back, in two buffers", split(a), podIdentity(1)},
	} {
		var got knowingnodev1.GetIdentityResponse
		if err := c.Unmarshal(tc.data, &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !proto.Equal(got.GetIdentity(), tc.want) {
			t.Errorf("%s: decoded %v, want %v", tc.name, got.GetIdentity(), tc.want)
		}
	}
	var first, second knowingnodev1.GetIdentityResponse
	for _, m := range []*knowingnodev1.GetIdentityResponse{&first, &second} {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(a)}, m); err != nil {
			t.Fatal(err)
		}
	}
	if first.Identity != second.Identity {
		t.Error("the same reply twice was decoded twice; want the second to reuse the first")
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05})}, &first); err == nil {
		t.Error("a truncated reply decoded without error")
	}
	// Other messages (health checks) go to the proto codec as they are.
	var other knowingnodev1.GetIdentityRequest
	if err := c.Unmarshal(mem.BufferSlice{}, &other); err != nil {
		t.Errorf("empty request: %v", err)
	}
}
