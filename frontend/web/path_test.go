package web

import (
	"net/http"
	"strings"
	"testing"
)

// Paths the embedded file system cannot name are the client's error, never
// the server's: invalid UTF-8 (an overlong '/', a lone byte) is a 400 naming
// the problem, a name fs.ValidPath refuses is a 404.
func TestBadPathsAreClientErrors(t *testing.T) {
	h := Handler()
	for _, c := range []struct {
		path   string
		status int
		naming string
	}{
		{"/%FF", http.StatusBadRequest, "UTF-8"},
		{"/%C0%AF", http.StatusBadRequest, "UTF-8"},
		{"/app.js%C0%AF", http.StatusBadRequest, "UTF-8"},
		{"/%ED%A0%80", http.StatusBadRequest, "UTF-8"}, // a UTF-16 surrogate
		{"/nope%00.js", http.StatusNotFound, ""},
		{"/" + strings.Repeat("a/", 2000) + "x", http.StatusNotFound, ""},
	} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			resp := get(t, h, m, c.path, nil)
			b := body(t, resp)
			if resp.StatusCode != c.status || (m == http.MethodGet && !strings.Contains(b, c.naming)) {
				t.Errorf("%s %s: %d %q, want %d naming %q", m, c.path, resp.StatusCode, b, c.status, c.naming)
			}
			checkSecurityHeaders(t, c.path, resp.Header)
		}
	}
}
