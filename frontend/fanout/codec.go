package fanout

import (
	"bytes"
	"sync/atomic"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// identityCodec is the proto codec of one endpoint's connection, except that
// it remembers the last GetIdentity reply it decoded, and when the next one
// is the same bytes (a backend's identity never changes, and the backend
// sends its encoded reply as it is) hands out that decoded reply's fields
// instead of decoding again. Decoding the identity, strings and maps, was
// a tenth of the frontend's CPU in a fan-out and most of its allocations
// per backend call. The fields are shared between results, read-only, as
// the Service's own identity is.
type identityCodec struct {
	encoding.CodecV2
	last atomic.Pointer[decodedReply]
}

type decodedReply struct {
	raw  []byte
	resp *knowingnodev1.GetIdentityResponse
	// The encoded Identity within raw, when the reply is that one field
	// only: what the fan-out's reply splices in (EncodeReply).
	identity []byte
}

func newIdentityCodec() *identityCodec {
	return &identityCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

func (c *identityCodec) Unmarshal(data mem.BufferSlice, v any) error {
	resp, ok := v.(*knowingnodev1.GetIdentityResponse)
	if !ok {
		return c.CodecV2.Unmarshal(data, v)
	}
	var raw []byte
	if len(data) == 1 {
		raw = data[0].ReadOnlyData()
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		raw = buf.ReadOnlyData()
	}
	if last := c.last.Load(); last != nil && bytes.Equal(last.raw, raw) {
		// A shallow copy of every populated field: sub-messages shared.
		dst := resp.ProtoReflect()
		last.resp.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			dst.Set(fd, v)
			return true
		})
		return nil
	}
	if err := c.CodecV2.Unmarshal(data, resp); err != nil {
		return err
	}
	// Its own decoded copy: resp is the caller's, and raw is recycled.
	kept := &knowingnodev1.GetIdentityResponse{}
	resp.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		kept.ProtoReflect().Set(fd, v)
		return true
	})
	kraw := bytes.Clone(raw)
	c.last.Store(&decodedReply{raw: kraw, resp: kept, identity: identityField(kraw)})
	return nil
}

// identityBytes returns the encoded form of id when id is the identity this
// codec decoded last (the very pointer, shared read-only), or nil.
func (c *identityCodec) identityBytes(id *knowingnodev1.Identity) []byte {
	if last := c.last.Load(); last != nil && id != nil && last.resp.GetIdentity() == id {
		return last.identity
	}
	return nil
}

// identityField returns the bytes of field 1 (identity) of an encoded
// GetIdentityResponse, when it is the only field and occurs once; nil
// otherwise (then nothing is spliced: the reply is encoded as usual).
func identityField(raw []byte) []byte {
	num, typ, n := protowire.ConsumeTag(raw)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		return nil
	}
	v, m := protowire.ConsumeBytes(raw[n:])
	if m < 0 || n+m != len(raw) {
		return nil
	}
	return v
}
