// Package web serves the frontend's browser page: static HTML, CSS and
// JavaScript embedded in the binary. The page reads everything it shows from
// the gateway's REST API (/v1/...) on the same origin, so it needs nothing
// outside the cluster and nothing the API does not already expose.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

//go:embed static
var files embed.FS

// ContentSecurityPolicy allows only same-origin resources: the page's own
// script, style and icon files, and fetches to its own API. No inline script
// or style, no framing, no plugins.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// Handler serves the page at "/" and its assets beside it. Every response,
// errors included, carries the security headers. No CORS headers are set:
// the page and the API share an origin, and other origins get nothing.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	etags := contentETags(static)
	fileServer := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		// The file server answers 500 for a name the embedded file system
		// refuses (fs.ErrInvalid); such a path is the client's error.
		if !utf8.ValidString(r.URL.Path) {
			http.Error(w, "path is not valid UTF-8", http.StatusBadRequest)
			return
		}
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		if tag, ok := etags[name]; ok {
			// Embedded files have no modification time, so without an ETag a
			// browser could neither revalidate nor notice a new release.
			h.Set("ETag", tag)
			h.Set("Cache-Control", "no-cache")
		}
		fileServer.ServeHTTP(w, r)
	})
}

// contentETags hashes every embedded file once, at start-up.
func contentETags(fsys fs.FS) map[string]string {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		tags[p] = `"` + hex.EncodeToString(sum[:8]) + `"`
		return nil
	})
	if err != nil {
		panic(err) // embedded files are readable
	}
	return tags
}

// Paths are the page's own URL paths: "/" and each embedded file, for
// tests that must cover every path the frontend serves.
func Paths() []string {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	paths := []string{"/"}
	for name := range contentETags(static) {
		paths = append(paths, "/"+name)
	}
	return paths
}
