package gateway

import (
	"fmt"
	"net/http"
	"net/url"

	"google.golang.org/grpc/codes"
)

// The HTTP face's one cross-origin policy, so that no other web page can
// drive the frontend through its visitors' browsers:
//
//   - Every unsafe method (POST /v1/load ...), on every route, from another
//     origin is refused: http.CrossOriginProtection. A cross-site POST sent
//     as text/plain is a "simple" request, with no CORS preflight to stop it.
//   - Every route of the API (each path of the OpenAPI document, /hostz
//     and a load's report, LoadReportPath) also refuses cross-site GETs: a
//     fan-out, a stream or a load costs backend calls (and a report tells
//     what the cluster's pods are), and a page from another site could start one
//     with an <img> or a fetch in no-cors mode. It could never read the
//     answer (no CORS headers are ever set), so refusing the cheap ones too
//     costs no legitimate use, and keeps the rule one rule: the guard is
//     part of the api handler every route is served through, so a new route
//     is guarded without anyone listing it.
//   - The page, its files, the probes, /metrics and /openapi.json are open
//     to cross-site GETs: they cost nothing and links to them must work.
//
// Requests without browser headers (curl, gRPC-gateway clients, probes)
// always pass. --allow-cross-site turns both checks off, and every refusal
// names it.
type crossOrigin struct{ allow bool }

// protect refuses unsafe methods from another origin on every route.
func (c crossOrigin) protect(h http.Handler) http.Handler {
	if c.allow {
		return h
	}
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		why := crossSite(r)
		if why == "" {
			why = "cross-origin request"
		}
		c.refuse(w, r, why)
	}))
	return p.Handler(h)
}

// refused answers r with a refusal and reports true when r comes from a
// browser on another site; for the API's routes, whatever the method.
func (c crossOrigin) refused(w http.ResponseWriter, r *http.Request) bool {
	if c.allow {
		return false
	}
	why := crossSite(r)
	if why == "" {
		return false
	}
	c.refuse(w, r, why)
	return true
}

func (crossOrigin) refuse(w http.ResponseWriter, r *http.Request, why string) {
	w.Header().Set("Vary", "Origin, Sec-Fetch-Site")
	writeError(w, http.StatusForbidden, int(codes.PermissionDenied), fmt.Sprintf(
		"%s: cross-site browser requests to %s %s are refused; start the frontend with --allow-cross-site to permit them",
		why, r.Method, r.URL.Path))
}

// crossSite says why r comes from another site, or "" if it does not. As
// http.CrossOriginProtection decides: Sec-Fetch-Site when the browser sends
// it, else an Origin whose host differs from the request's.
func crossSite(r *http.Request) string {
	switch sfs := r.Header.Get("Sec-Fetch-Site"); sfs {
	case "":
	case "same-origin", "none":
		return ""
	default:
		return "Sec-Fetch-Site: " + sfs
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	if u, err := url.Parse(origin); err == nil && u.Host == r.Host {
		return ""
	}
	return "Origin " + origin + " is not " + r.Host
}
