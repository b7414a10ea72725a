package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// Every REST error has one body shape, whoever answers it (the checks in
// front of the gateway, the gateway for a unary call, a stream before or
// after its first line, the cross-origin policy):
//
//	{"error": {"code": 5, "message": "unknown target \"x\"; ...", "details": [...]}}
//
// The inner object is a google.rpc.Status (code: the gRPC code number).
// It is the shape a stream must use for its last line, where {"result": ...}
// lines came before, so the unary answers take it too; the HTTP status is
// the code's usual mapping (runtime.HTTPStatusFromCode).

// gRPC codes in error bodies written before a request reaches the gateway.
const (
	codeInvalidArgument = int(codes.InvalidArgument)
	codeUnimplemented   = int(codes.Unimplemented)
)

// writeError answers with the error shape, for errors found before a
// request reaches the gateway.
func writeError(w http.ResponseWriter, httpStatus int, grpcCode int, msg string) {
	writeStatus(w, httpStatus, status.New(codes.Code(grpcCode), msg))
}

func writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status) {
	b, err := protojson.Marshal(st.Proto())
	if err != nil { // a Status always marshals; be safe anyway
		b, _ = protojson.Marshal(status.New(st.Code(), st.Message()).Proto())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Del("Content-Length")
	w.WriteHeader(httpStatus)
	w.Write(append(append(append([]byte(`{"error":`), b...), '}'), '\n'))
}

// errorStatus is err as a status. A bare context error (the request was
// cancelled or timed out) is CANCELLED or DEADLINE_EXCEEDED, never
// UNKNOWN, which would be answered 500: a server error for what the client
// or its deadline did.
func errorStatus(err error) *status.Status {
	if st, ok := status.FromError(err); ok {
		return st
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err)
	}
	return status.Convert(err)
}

// handleError is the gateway's error handler (runtime.WithErrorHandler):
// the default one's status mapping, in the one error shape.
func handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	httpStatus := 0
	var hse *runtime.HTTPStatusError // the gateway's own 404, 405, 501
	if errors.As(err, &hse) {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	st := errorStatus(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	writeStatus(w, httpStatus, st)
}

// streamError is the status a stream's error line carries
// (runtime.WithStreamErrorHandler); the gateway writes it as
// {"error": status}, the shape above.
func streamError(_ context.Context, err error) *status.Status { return errorStatus(err) }
