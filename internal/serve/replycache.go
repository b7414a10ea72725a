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
	encoded  map[protobuf.Message][]byte // written before serving, read-only after
	encoders []Encoder                   // likewise
}

// Encoder encodes the replies it knows (ok), in its own way; the server
// encodes the others as usual.
type Encoder func(v any) (b mem.BufferSlice, ok bool, err error)

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
	for _, enc := range c.encoders {
		if b, ok, err := enc(v); ok {
			return b, err
		}
	}
	return c.CodecV2.Marshal(v)
}

// EncodeWith has enc encode the replies it knows: a service whose replies
// embed bytes it already holds can write them as they are. Call it before
// Run.
func (s *Server) EncodeWith(enc Encoder) {
	s.codec.encoders = append(s.codec.encoders, enc)
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
