package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"
)

// route is one REST path as its OpenAPI document describes it: the methods
// it answers and the query parameters it takes. Reading them from the
// document keeps these checks in step with the protos, with no second list.
type route struct {
	path    string   // template: "{x}" segments match any one segment
	methods []string // upper case, as registered
	allow   string   // the Allow header: the methods, HEAD with GET, and OPTIONS
	params  []param  // query parameters, in the document's order
	stream  bool     // a server stream: newline-delimited JSON, as long as it runs
}

type param struct {
	name     string
	repeated bool
	enum     []string // accepted values; empty: any
	prefix   string   // the enum values' common prefix, which users may leave out
}

// routesFromOpenAPI reads the routes of an OpenAPI v2 document.
func routesFromOpenAPI(doc []byte) ([]route, error) {
	type schema struct {
		Name  string   `json:"name"`
		In    string   `json:"in"`
		Type  string   `json:"type"`
		Enum  []string `json:"enum"`
		Items struct {
			Enum []string `json:"enum"`
		} `json:"items"`
	}
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("read routes from the OpenAPI document: %w", err)
	}
	var routes []route
	for path, ops := range d.Paths {
		rt := route{path: path}
		for method, raw := range ops {
			method = strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "PUT", "POST", "DELETE", "PATCH"}, method) {
				continue // e.g. path-level "parameters"
			}
			var op struct {
				Parameters []schema `json:"parameters"`
				Responses  map[string]struct {
					Schema struct {
						Title string `json:"title"`
					} `json:"schema"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("read routes from the OpenAPI document: %s %s: %w", method, path, err)
			}
			rt.methods = append(rt.methods, method)
			// protoc-gen-openapiv2 titles a server stream's reply so.
			if strings.HasPrefix(op.Responses["200"].Schema.Title, "Stream result of ") {
				rt.stream = true
			}
			for _, p := range op.Parameters {
				if p.In != "query" || slices.ContainsFunc(rt.params, func(q param) bool { return q.name == p.Name }) {
					continue
				}
				q := param{name: p.Name, repeated: p.Type == "array", enum: p.Enum}
				if q.repeated {
					q.enum = p.Items.Enum
				}
				q.prefix = commonPrefix(q.enum)
				rt.params = append(rt.params, q)
			}
		}
		rt.allow = allowHeader(rt.methods)
		routes = append(routes, rt)
	}
	// Literal paths before templates, so /v1/targets/all beats /v1/targets/{name}.
	slices.SortFunc(routes, func(a, b route) int { return strings.Count(a.path, "{") - strings.Count(b.path, "{") })
	return routes, nil
}

func allowHeader(methods []string) string {
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if slices.Contains(methods, m) || (m == "HEAD" && slices.Contains(methods, "GET")) {
			allow = append(allow, m)
		}
	}
	return strings.Join(append(allow, "OPTIONS"), ", ")
}

// commonPrefix is the prefix up to the last '_' shared by every enum value,
// e.g. "FAN_OUT_MODE_", so that mode=EACH stands for FAN_OUT_MODE_EACH.
func commonPrefix(enum []string) string {
	if len(enum) < 2 {
		return ""
	}
	p := enum[0]
	for _, e := range enum[1:] {
		for !strings.HasPrefix(e, p) {
			p = p[:len(p)-1]
		}
	}
	return p[:strings.LastIndex(p, "_")+1]
}

func (rt *route) matches(path string) bool {
	want, got := strings.Split(rt.path, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		if w != got[i] && !(strings.HasPrefix(w, "{") && got[i] != "") {
			return false
		}
	}
	return true
}

// api enforces the cross-origin policy (crossOrigin) for every path it
// serves, and REST conventions in front of the gateway, for the routes it
// knows: 405 with Allow for another method, HEAD answered as GET, OPTIONS
// answered with Allow, and a query that is well formed, valid UTF-8, names
// only parameters the route takes, each (unless repeated) once. Everything
// else reaches next unchanged, and its answers get nosniff and no-store.
//
// Unknown parameters are refused, not ignored: a typo such as ?targt=x would
// otherwise be answered for the default target, not the one asked for.
type api struct {
	routes []route
	next   http.Handler
	cross  crossOrigin // every route of the API refuses cross-site browsers
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if a.cross.refused(w, r) {
		return
	}
	if !utf8.ValidString(r.URL.Path) {
		writeError(w, http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf("path %q is not valid UTF-8", r.URL.Path))
		return
	}
	i := slices.IndexFunc(a.routes, func(rt route) bool { return rt.matches(r.URL.Path) })
	if i < 0 {
		a.next.ServeHTTP(w, r) // the gateway's 404
		return
	}
	rt := &a.routes[i]
	method := r.Method
	switch {
	case method == http.MethodOptions:
		h.Set("Allow", rt.allow)
		w.WriteHeader(http.StatusNoContent)
		return
	case method == http.MethodHead && slices.Contains(rt.methods, http.MethodGet):
		method = http.MethodGet // the server sends no body for HEAD
	case !slices.Contains(rt.methods, method):
		h.Set("Allow", rt.allow)
		writeError(w, http.StatusMethodNotAllowed, codeUnimplemented,
			fmt.Sprintf("method %s is not allowed on %s: use %s", method, r.URL.Path, rt.allow))
		return
	}
	if len(r.URL.RawQuery) > maxQuery {
		writeError(w, http.StatusRequestURITooLong, codeInvalidArgument,
			fmt.Sprintf("query string of %d bytes exceeds the limit of %d", len(r.URL.RawQuery), maxQuery))
		return
	}
	q, err := rt.parseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, codeInvalidArgument, err.Error())
		return
	}
	r2 := r.Clone(r.Context())
	r2.Method = method
	// The gateway reads exactly what was checked here.
	r2.URL.RawQuery = q.Encode()
	r2.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if method == http.MethodGet && r.ContentLength != 0 {
		// A GET takes no body, and one declared but never sent would hold
		// the gateway (which drains it) and then net/http (which discards
		// it before answering) until the read timeout. Ignore it, and close
		// the connection after the answer instead of reading what is left.
		r2.Body, r2.ContentLength = http.NoBody, 0
		h.Set("Connection", "close")
	}
	a.next.ServeHTTP(w, r2)
}

// parseQuery parses a query pair by pair, so that an error names its
// parameter (url.ParseQuery reports only the first problem, without the
// name, and r.URL.Query drops the pair silently), and spells enum values
// out in full.
func (rt *route) parseQuery(raw string) (url.Values, error) {
	vals := url.Values{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawKey, _, _ := strings.Cut(pair, "=")
		if strings.Contains(pair, ";") {
			return nil, fmt.Errorf("parameter %q: ';' is not allowed in a query: separate parameters with '&', or escape it as %%3B", rawKey)
		}
		one, err := url.ParseQuery(pair)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %v", rawKey, err)
		}
		for k, vs := range one {
			if !utf8.ValidString(k) {
				return nil, fmt.Errorf("parameter name %q is not valid UTF-8", k)
			}
			p := rt.param(k)
			if p == nil {
				return nil, fmt.Errorf("unknown parameter %q: %s", k, rt.takes())
			}
			for _, v := range vs {
				if !utf8.ValidString(v) {
					return nil, fmt.Errorf("parameter %q: value %q is not valid UTF-8", k, v)
				}
				if v, err = p.canonical(v); err != nil {
					return nil, err
				}
				vals[k] = append(vals[k], v)
			}
			if n := len(vals[k]); n > 1 && !p.repeated {
				return nil, fmt.Errorf("parameter %q given %d times; give it once", k, n)
			}
		}
	}
	return vals, nil
}

func (rt *route) param(name string) *param {
	i := slices.IndexFunc(rt.params, func(p param) bool { return p.name == name })
	if i < 0 {
		return nil
	}
	return &rt.params[i]
}

func (rt *route) takes() string {
	if len(rt.params) == 0 {
		return rt.path + " takes none"
	}
	names := make([]string, len(rt.params))
	for i, p := range rt.params {
		names[i] = p.name
	}
	return rt.path + " takes " + strings.Join(names, ", ")
}

// canonical returns an enum value in full: any case, prefix optional.
func (p *param) canonical(v string) (string, error) {
	if len(p.enum) == 0 || v == "" {
		return v, nil
	}
	up := strings.ToUpper(v)
	for _, e := range p.enum {
		if up == e || p.prefix+up == e {
			return e, nil
		}
	}
	var want []string
	for _, e := range p.enum {
		if !strings.HasSuffix(e, "_UNSPECIFIED") {
			want = append(want, strings.TrimPrefix(e, p.prefix))
		}
	}
	hint := strings.Join(want, ", ")
	if n := len(want); n > 1 {
		hint = strings.Join(want[:n-1], ", ") + " or " + want[n-1]
	}
	return "", fmt.Errorf("parameter %q: %q is not a value it takes: want %s", p.name, v, hint)
}
