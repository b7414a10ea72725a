package serve

import (
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	protobuf "google.golang.org/protobuf/proto"
)

// replyCodec is the proto codec, except that replies registered with
// CacheReply are encoded once and their bytes sent as they are: an identity
// that never changes need not be marshaled per request, and marshaling its
// maps was the largest cost of a call.
type replyCodec struct {
	encoding.CodecV2
	encoded map[protobuf.Message][]byte // written before serving, read-only after
}

func newReplyCodec() *replyCodec {
	return &replyCodec{CodecV2: encoding.GetCodecV2(proto.Name), encoded: map[protobuf.Message][]byte{}}
}

func (c *replyCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(protobuf.Message); ok {
		if b, ok := c.encoded[m]; ok {
			// SliceBuffer's Free is a no-op: the bytes are never recycled.
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.CodecV2.Marshal(v)
}

// CacheReply encodes m now and sends those bytes whenever a handler returns
// this very message (the same pointer). m must not change afterwards. Call it
// before Run.
func (s *Server) CacheReply(m protobuf.Message) error {
	b, err := protobuf.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return err
	}
	s.codec.encoded[m] = b
	return nil
}
