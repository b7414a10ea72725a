package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// sameSiteOnly refuses browser requests made from another site to the
// expensive paths (prefixes), unless allow: any web page could otherwise
// make its visitors' browsers run fan-outs with a cross-site GET, which
// http.CrossOriginProtection lets through since GET is a safe method.
// Requests without browser headers (curl, gRPC-gateway clients) pass.
func sameSiteOnly(next http.Handler, allow bool, prefixes ...string) http.Handler {
	if allow {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if matches(r.URL.Path, prefixes) {
			if why := crossSite(r); why != "" {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Vary", "Origin, Sec-Fetch-Site")
				w.WriteHeader(http.StatusForbidden)
				b, _ := json.Marshal(struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}{7, why + ": cross-site requests to " + r.URL.Path + " are refused (the frontend's allow-cross-site flag permits them)"}) // 7: PERMISSION_DENIED
				w.Write(append(b, '\n'))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func matches(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// crossSite says why r comes from another site, or "" if it does not. Like
// http.CrossOriginProtection: Sec-Fetch-Site when the browser sends it, else
// an Origin whose host differs from the request's.
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

// retryAfter adds Retry-After: 1 to 429 answers (the gateway's mapping of
// RESOURCE_EXHAUSTED from admission control): the limits are on work in
// flight, which frees within about a fan-out's duration.
func retryAfter(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&retryAfterWriter{ResponseWriter: w}, r)
	})
}

type retryAfterWriter struct{ http.ResponseWriter }

func (w *retryAfterWriter) WriteHeader(code int) {
	if code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *retryAfterWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
