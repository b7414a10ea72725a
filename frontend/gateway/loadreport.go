package gateway

import (
	"context"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"

	"github.com/knowingnode/knowingnode/internal/load/report"
)

// LoadReportPath is where the HTML report of a load run is downloaded
// (frontend/load: the run id is the runId of LoadService/Run's stream). An
// HTML file is no protobuf message, so it is no gRPC method and not in the
// OpenAPI document; it is served beside the gateway through the same api
// handler, so under the same rules: cross-site browsers refused, 405 with
// Allow, HEAD, OPTIONS, no query parameters, errors in the one shape.
const LoadReportPath = "/v1/load/runs/{run_id}/report"

// LoadReport finds the report of a load run: its file name and HTML, or a
// gRPC status error (NOT_FOUND, UNAVAILABLE).
type LoadReport func(ctx context.Context, runID string) (name string, html []byte, err error)

// loadReportRoute is LoadReportPath for the api handler.
var loadReportRoute = route{path: LoadReportPath, methods: []string{http.MethodGet}, allow: allowHeader([]string{http.MethodGet})}

// loadReportHeaders are a served report's: its own policy as a header too
// (nothing but its inline code, no request), in a sandbox of its own origin,
// never framed; a download, not a page of the frontend's origin.
const loadReportCSP = report.CSP + "; frame-ancestors 'none'; sandbox allow-scripts"

func serveLoadReport(get LoadReport) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, html, err := get(r.Context(), r.PathValue("run_id"))
		if err != nil {
			st := errorStatus(err)
			if st.Code() == codes.Unavailable {
				w.Header().Set("Retry-After", "2")
			}
			writeStatus(w, runtime.HTTPStatusFromCode(st.Code()), st)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("Content-Security-Policy", loadReportCSP)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Length", strconv.Itoa(len(html)))
		w.Write(html) // nothing for HEAD: net/http drops it
	})
}
