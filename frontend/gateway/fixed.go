package gateway

import (
	"fmt"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// fixedMarshaler is the gateway's JSON marshaler, except that replies
// registered as fixed (never changing, such as the frontend's own identity)
// are encoded once and their bytes written as they are: encoding the
// identity's fields and maps was a third of what GET /v1/identity cost. It
// is the REST twin of the gRPC reply cache in internal/serve.
//
// A fan-out's reply, and each line of its stream, is encoded by fanOut:
// each distinct backend identity encoded once (fanoutjson.go).
type fixedMarshaler struct {
	*runtime.JSONPb
	encoded map[proto.Message][]byte // written in New, read-only after
	fanOut  *fanOutJSON              // nil: m's options are not the defaults, or fanout.proto changed
}

func newFixedMarshaler(m *runtime.JSONPb, fixed []proto.Message) (*fixedMarshaler, error) {
	f := &fixedMarshaler{JSONPb: m, encoded: make(map[proto.Message][]byte, len(fixed)), fanOut: newFanOutJSON(m.MarshalOptions)}
	for _, msg := range fixed {
		b, err := m.Marshal(msg)
		if err != nil {
			return nil, fmt.Errorf("encode fixed reply %T: %w", msg, err)
		}
		f.encoded[msg] = b
	}
	return f, nil
}

// Marshal returns the cached bytes when v is a fixed reply (the very same
// pointer). The gateway only writes what it gets, so sharing them is safe.
func (f *fixedMarshaler) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		if b, ok := f.encoded[m]; ok {
			return b, nil
		}
	}
	if f.fanOut != nil {
		if b, ok := f.fanOut.marshal(v); ok {
			return b, nil
		}
	}
	return f.JSONPb.Marshal(v)
}
