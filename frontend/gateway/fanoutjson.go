package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// fanOutJSON encodes a fan-out's reply (GET /v1/fanout) and the lines of
// its stream (GET /v1/fanout:stream) byte for byte as runtime.JSONPb does,
// except that each identity's JSON is taken from a cache (identityCache)
// rather than encoded again: the identities were most of what encoding a
// reply cost, and a backend's identity does not change. It is the REST twin
// of the gRPC splice (fanout.EncodeReply), which writes each backend's
// identity from the bytes it sent.
//
// The rest of the reply (results, summary, discovery state) it writes by
// hand, as protojson would: protojson's reflection over the summary's maps
// and durations cost more than the cached identities. It only serves the
// gateway's options, protojson's defaults, and only while the messages it
// writes have the fields it knows (newFanOutJSON checks their descriptors).
// Anything else it does not handle (another message, a nil element, an
// invalid duration, timestamp or string) it declines, and the caller
// encodes the message with JSONPb as before, so an error is JSONPb's.
// TestFanOutJSONIsJSONPb and FuzzFanOutJSON hold it to JSONPb.
type fanOutJSON struct {
	ids *identityCache
	// What protojson writes between two members or elements: "," or ", ".
	// It adds the space or not for the whole binary (detrand, to keep
	// callers from depending on its bytes), so it is read from protojson.
	sep string
	// The most bytes a result took so far, to size the next reply's buffer
	// at once: growing it was a tenth of the encoding over 30 backends.
	perResult atomic.Int64
}

// The size of a reply's buffer: replyBase and, per result, perResult (at
// most maxPerResult: one huge result must not size every buffer after it)
// and what the discovery state adds per endpoint.
const (
	replyBase    = 4 << 10
	maxPerResult = 16 << 10
	perEndpoint  = 128
)

// handWritten are the messages fanOutJSON writes (or, for Identity and
// BuildInfo, compares and hashes), with their fields' JSON names in
// protojson's order: the fields' order in the .proto file.
var handWritten = []struct {
	msg    proto.Message
	fields string
}{
	{&knowingnodev1.FanOutResponse{}, "frontend target mode results summary discovery policy"},
	{&knowingnodev1.BackendResult{}, "address dnsName identity code message latency calls load hashKeys"},
	{&knowingnodev1.BackendLoad{}, "reports cpuUtilization applicationUtilization rps eps weight weightShare"},
	{&knowingnodev1.FanOutSummary{}, "total ok failed byNode byPod byCode latencyMin latencyP50 latencyP99 latencyMax duration draining byZone notSent loadByPod"},
	{&knowingnodev1.TargetState{}, "name spec mode query dnsServer endpoints lastRefresh lastSuccess lastError refreshes refreshErrors compare"},
	{&knowingnodev1.Endpoint{}, "address dnsName slice"},
	{&knowingnodev1.EndpointSliceInfo{}, "ready serving terminating nodeName zone hostname targetRef hintZones hintNodes slices"},
	{&knowingnodev1.TargetComparison{}, "other summary onlyDns onlyApi agree"},
	{&knowingnodev1.Identity{}, "podName podNamespace podIp podIps podUid nodeName nodeIp serviceAccount labels annotations cpuLimitMillicores memoryLimitBytes hostname startTime build tier servingAddresses sources zone region"},
	{&knowingnodev1.BuildInfo{}, "version revision goVersion"},
	{&durationpb.Duration{}, "seconds nanos"},
	{&timestamppb.Timestamp{}, "seconds nanos"},
}

// errFieldsChanged says which hand-written message no longer has the
// fields fanOutJSON knows: the .proto changed and fanoutjson.go did not.
var errFieldsChanged = errors.New("fields changed")

// checkHandWritten returns an error naming the first message of
// handWritten whose fields are not those listed.
func checkHandWritten() error {
	for _, h := range handWritten {
		fds := h.msg.ProtoReflect().Descriptor().Fields()
		var names []string
		for i := range fds.Len() {
			names = append(names, fds.Get(i).JSONName())
		}
		if got := strings.Join(names, " "); got != h.fields {
			return errors.Join(errFieldsChanged, errors.New(string(h.msg.ProtoReflect().Descriptor().FullName())+
				" has fields "+got+"; fanoutjson.go writes "+h.fields))
		}
	}
	return nil
}

// newFanOutJSON returns the encoder for a JSONPb with opts, or nil when the
// options change the encoding in ways it does not write (names, enums as
// numbers, unpopulated fields, indentation) or the messages are not those
// it was written for: then JSONPb encodes as before.
func newFanOutJSON(opts protojson.MarshalOptions) *fanOutJSON {
	if opts.Multiline || opts.Indent != "" || opts.UseProtoNames || opts.UseEnumNumbers ||
		opts.EmitUnpopulated || opts.EmitDefaultValues || checkHandWritten() != nil {
		return nil
	}
	probe, err := opts.Marshal(&knowingnodev1.BuildInfo{Version: "a", Revision: "b"})
	if err != nil {
		return nil
	}
	sep, _ := bytes.CutPrefix(probe, []byte(`{"version":"a"`))
	sep, ok := bytes.CutSuffix(sep, []byte(`"revision":"b"}`))
	if !ok || (string(sep) != "," && string(sep) != ", ") {
		return nil
	}
	return &fanOutJSON{ids: newIdentityCache(opts), sep: string(sep)}
}

// marshal encodes v when it is a fan-out's reply, or the gateway's wrapping
// of a stream's message (map[string]any{"result": *FanOutStreamResponse},
// see runtime.ForwardResponseStream); ok is false for anything else, and
// for what it declines.
func (e *fanOutJSON) marshal(v any) (_ []byte, ok bool) {
	switch m := v.(type) {
	case *knowingnodev1.FanOutResponse:
		if m == nil {
			return nil, false
		}
		n := int64(len(m.Results))
		w := writer{e: e, sep: e.sep, out: make([]byte, 0, replyBase+n*(max(e.perResult.Load(), 1024)+perEndpoint))}
		w.response(m)
		if n > 0 {
			if per := int64(w.resultsLen) / n; per > e.perResult.Load() && per <= maxPerResult {
				e.perResult.Store(per) // racing stores: one wins, either will do
			}
		}
		return w.out, w.err == nil
	case map[string]any:
		s, _ := m["result"].(*knowingnodev1.FanOutStreamResponse)
		if len(m) != 1 || s == nil {
			return nil, false
		}
		// What JSONPb makes of it: s in protojson, compacted and HTML-escaped
		// as json.Marshal writes a json.RawMessage, within {"result": …}.
		w := writer{e: e, sep: ",", line: true, out: make([]byte, 0, 4096)}
		w.out = append(w.out, `{"result":`...)
		o := w.object()
		switch ev := s.Event.(type) {
		case *knowingnodev1.FanOutStreamResponse_Result:
			o.member("result")
			w.result(ev.Result)
		case *knowingnodev1.FanOutStreamResponse_Done:
			o.member("done")
			w.response(ev.Done)
		default:
			return nil, false
		}
		o.end()
		w.out = append(w.out, '}')
		return w.out, w.err == nil
	}
	return nil, false
}

// errDeclined is a message the encoder leaves to JSONPb.
var errDeclined = errors.New("gateway: left to protojson")

// writer appends JSON to out as protojson does; the first error sticks.
type writer struct {
	e    *fanOutJSON
	out  []byte
	sep  string
	line bool // a stream line: compacted, HTML-escaped (see appendString)
	err  error
	// The bytes of the last results written (response).
	resultsLen int
}

// object is an object being written: members are separated.
type object struct {
	w     *writer
	first bool
}

func (w *writer) object() object {
	w.out = append(w.out, '{')
	return object{w: w, first: true}
}

// member writes the separator unless first, then "name":.
func (o *object) member(name string) {
	if !o.first {
		o.w.out = append(o.w.out, o.w.sep...)
	}
	o.first = false
	o.w.out = append(o.w.out, '"')
	o.w.out = append(o.w.out, name...)
	o.w.out = append(o.w.out, '"', ':')
}

// key is member for a map's key: escaped as any string.
func (o *object) key(k string) {
	if !o.first {
		o.w.out = append(o.w.out, o.w.sep...)
	}
	o.first = false
	o.w.str(k)
	o.w.out = append(o.w.out, ':')
}

func (o *object) end() { o.w.out = append(o.w.out, '}') }

// The members, written when populated as protojson writes them.

func (o *object) str(name, v string) {
	if v != "" {
		o.member(name)
		o.w.str(v)
	}
}

func (o *object) int32(name string, v int32) {
	if v != 0 {
		o.member(name)
		o.w.out = strconv.AppendInt(o.w.out, int64(v), 10)
	}
}

// int64 is a string in protojson.
func (o *object) int64(name string, v int64) {
	if v != 0 {
		o.member(name)
		o.w.out = append(strconv.AppendInt(append(o.w.out, '"'), v, 10), '"')
	}
}

// double is a JSON number in protojson (NaN and the infinities strings),
// written when its bits are not zero (-0 is populated).
func (o *object) double(name string, v float64) {
	if math.Float64bits(v) == 0 {
		return
	}
	o.member(name)
	switch {
	case math.IsNaN(v):
		o.w.out = append(o.w.out, `"NaN"`...)
		return
	case math.IsInf(v, 1):
		o.w.out = append(o.w.out, `"Infinity"`...)
		return
	case math.IsInf(v, -1):
		o.w.out = append(o.w.out, `"-Infinity"`...)
		return
	}
	// As protojson (and encoding/json): 'e' below 1e-6 (but -0: "-0") and
	// from 1e21, its exponent without a leading 0 ("1e-07" becomes "1e-7").
	format := byte('f')
	if abs := math.Abs(v); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	out := strconv.AppendFloat(o.w.out, v, format, -1, 64)
	if n := len(out); format == 'e' && n >= 4 && out[n-4] == 'e' && out[n-3] == '-' && out[n-2] == '0' {
		out[n-2] = out[n-1]
		out = out[:n-1]
	}
	o.w.out = out
}

func (o *object) bool(name string, v bool) {
	if v {
		o.member(name)
		o.w.out = append(o.w.out, "true"...)
	}
}

func (o *object) enum(name string, v protoreflect.Enum) {
	if n := v.Number(); n != 0 {
		o.member(name)
		if d := v.Descriptor().Values().ByNumber(n); d != nil {
			o.w.out = append(append(append(o.w.out, '"'), d.Name()...), '"')
		} else {
			o.w.out = strconv.AppendInt(o.w.out, int64(n), 10)
		}
	}
}

func (o *object) strs(name string, v []string) {
	if len(v) > 0 {
		o.member(name)
		o.w.out = append(o.w.out, '[')
		for i, s := range v {
			if i > 0 {
				o.w.out = append(o.w.out, o.w.sep...)
			}
			o.w.str(s)
		}
		o.w.out = append(o.w.out, ']')
	}
}

// counts is a map of counts, its keys in order as protojson sorts them.
func (o *object) counts(name string, m map[string]int32) {
	if len(m) == 0 {
		return
	}
	o.member(name)
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c := o.w.object()
	for _, k := range keys {
		c.key(k)
		o.w.out = strconv.AppendInt(o.w.out, int64(m[k]), 10)
	}
	c.end()
}

func (o *object) duration(name string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	o.member(name)
	const maxSeconds = 315576000000
	secs, nanos := d.Seconds, int64(d.Nanos)
	if secs < -maxSeconds || secs > maxSeconds || nanos <= -1e9 || nanos >= 1e9 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		o.w.fail(errDeclined)
		return
	}
	out := append(o.w.out, '"')
	if secs < 0 || nanos < 0 {
		out = append(out, '-')
		secs, nanos = -secs, -nanos
	}
	out = appendFraction(strconv.AppendInt(out, secs, 10), nanos)
	o.w.out = append(out, 's', '"')
}

// timestamp is RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
func (o *object) timestamp(name string, t *timestamppb.Timestamp) {
	if t == nil {
		return
	}
	o.member(name)
	const minSeconds, maxSeconds = -62135596800, 253402300799
	if t.Seconds < minSeconds || t.Seconds > maxSeconds || t.Nanos < 0 || t.Nanos >= 1e9 {
		o.w.fail(errDeclined)
		return
	}
	out := time.Unix(t.Seconds, 0).UTC().AppendFormat(append(o.w.out, '"'), "2006-01-02T15:04:05")
	o.w.out = append(appendFraction(out, int64(t.Nanos)), 'Z', '"')
}

// appendFraction writes nanos (0 to 999999999) as protojson does: nothing,
// or a point and 3, 6 or 9 digits.
func appendFraction(out []byte, nanos int64) []byte {
	if nanos == 0 {
		return out
	}
	digits := 9
	for digits > 3 && nanos%1000 == 0 {
		nanos /= 1000
		digits -= 3
	}
	var buf [9]byte
	for i := digits - 1; i >= 0; i-- {
		buf[i] = byte('0' + nanos%10)
		nanos /= 10
	}
	return append(append(out, '.'), buf[:digits]...)
}

func (w *writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// str writes a string; see appendString.
func (w *writer) str(s string) {
	var err error
	if w.out, err = appendString(w.out, s, w.line); err != nil {
		w.fail(err)
	}
}

// list writes the elements of a repeated message field; a nil element as
// protojson does, as an empty message.
func list[M any](o *object, name string, v []*M, each func(*M)) {
	if len(v) == 0 {
		return
	}
	o.member(name)
	o.w.out = append(o.w.out, '[')
	for i, m := range v {
		if i > 0 {
			o.w.out = append(o.w.out, o.w.sep...)
		}
		if m == nil {
			o.w.out = append(o.w.out, '{', '}')
			continue
		}
		each(m)
	}
	o.w.out = append(o.w.out, ']')
}

// message writes a singular message field.
func message[M any](o *object, name string, m *M, write func(*M)) {
	if m != nil {
		o.member(name)
		write(m)
	}
}

func (w *writer) response(r *knowingnodev1.FanOutResponse) {
	if r == nil {
		w.fail(errDeclined)
		return
	}
	o := w.object()
	message(&o, "frontend", r.Frontend, w.identity)
	o.str("target", r.Target)
	o.enum("mode", r.Mode)
	start := len(w.out)
	list(&o, "results", r.Results, w.result)
	w.resultsLen = len(w.out) - start
	message(&o, "summary", r.Summary, w.summary)
	message(&o, "discovery", r.Discovery, w.targetState)
	o.str("policy", r.Policy)
	o.end()
}

func (w *writer) result(r *knowingnodev1.BackendResult) {
	if r == nil {
		w.fail(errDeclined)
		return
	}
	o := w.object()
	o.str("address", r.Address)
	o.str("dnsName", r.DnsName)
	message(&o, "identity", r.Identity, w.identity)
	o.str("code", r.Code)
	o.str("message", r.Message)
	o.duration("latency", r.Latency)
	o.int32("calls", r.Calls)
	message(&o, "load", r.Load, w.load)
	o.strs("hashKeys", r.HashKeys)
	o.end()
}

func (w *writer) load(l *knowingnodev1.BackendLoad) {
	o := w.object()
	o.int32("reports", l.Reports)
	o.double("cpuUtilization", l.CpuUtilization)
	o.double("applicationUtilization", l.ApplicationUtilization)
	o.double("rps", l.Rps)
	o.double("eps", l.Eps)
	o.double("weight", l.Weight)
	o.double("weightShare", l.WeightShare)
	o.end()
}

// loads is a map of pods' loads, its keys in order as protojson sorts
// them; a nil load it leaves to protojson.
func (o *object) loads(name string, m map[string]*knowingnodev1.BackendLoad) {
	if len(m) == 0 {
		return
	}
	o.member(name)
	var buf [32]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	c := o.w.object()
	for _, k := range keys {
		c.key(k)
		if m[k] == nil {
			o.w.fail(errDeclined)
			return
		}
		o.w.load(m[k])
	}
	c.end()
}

// identity writes the cached JSON of id.
func (w *writer) identity(id *knowingnodev1.Identity) {
	j, err := w.e.ids.get(id)
	switch {
	case err != nil:
		w.fail(err)
	case w.line:
		w.out = append(w.out, j.line...)
	default:
		w.out = append(w.out, j.plain...)
	}
}

func (w *writer) summary(s *knowingnodev1.FanOutSummary) {
	o := w.object()
	o.int32("total", s.Total)
	o.int32("ok", s.Ok)
	o.int32("failed", s.Failed)
	o.counts("byNode", s.ByNode)
	o.counts("byPod", s.ByPod)
	o.counts("byCode", s.ByCode)
	o.duration("latencyMin", s.LatencyMin)
	o.duration("latencyP50", s.LatencyP50)
	o.duration("latencyP99", s.LatencyP99)
	o.duration("latencyMax", s.LatencyMax)
	o.duration("duration", s.Duration)
	o.int32("draining", s.Draining)
	o.counts("byZone", s.ByZone)
	o.int32("notSent", s.NotSent)
	o.loads("loadByPod", s.LoadByPod)
	o.end()
}

func (w *writer) targetState(t *knowingnodev1.TargetState) {
	o := w.object()
	o.str("name", t.Name)
	o.str("spec", t.Spec)
	o.enum("mode", t.Mode)
	o.str("query", t.Query)
	o.str("dnsServer", t.DnsServer)
	list(&o, "endpoints", t.Endpoints, w.endpoint)
	o.timestamp("lastRefresh", t.LastRefresh)
	o.timestamp("lastSuccess", t.LastSuccess)
	o.str("lastError", t.LastError)
	o.int64("refreshes", t.Refreshes)
	o.int64("refreshErrors", t.RefreshErrors)
	list(&o, "compare", t.Compare, w.comparison)
	o.end()
}

func (w *writer) endpoint(e *knowingnodev1.Endpoint) {
	o := w.object()
	o.str("address", e.Address)
	o.str("dnsName", e.DnsName)
	message(&o, "slice", e.Slice, w.sliceInfo)
	o.end()
}

func (w *writer) sliceInfo(s *knowingnodev1.EndpointSliceInfo) {
	o := w.object()
	o.bool("ready", s.Ready)
	o.bool("serving", s.Serving)
	o.bool("terminating", s.Terminating)
	o.str("nodeName", s.NodeName)
	o.str("zone", s.Zone)
	o.str("hostname", s.Hostname)
	o.str("targetRef", s.TargetRef)
	o.strs("hintZones", s.HintZones)
	o.strs("hintNodes", s.HintNodes)
	o.strs("slices", s.Slices)
	o.end()
}

func (w *writer) comparison(c *knowingnodev1.TargetComparison) {
	o := w.object()
	o.str("other", c.Other)
	o.str("summary", c.Summary)
	o.strs("onlyDns", c.OnlyDns)
	o.strs("onlyApi", c.OnlyApi)
	o.bool("agree", c.Agree)
	o.end()
}

// appendString writes s as protojson does: ", \ and control characters
// escaped (\b \f \n \r \t, else \u00XX), invalid UTF-8 refused. In a stream
// line (line), also <, >, &, U+2028 and U+2029, as json.Marshal escapes
// them in the json.RawMessage the gateway wraps each message in.
func appendString(out []byte, s string, line bool) ([]byte, error) {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				out = append(append(out, s[start:i]...), '\\', c)
			case c < ' ':
				out = append(out, s[start:i]...)
				switch c {
				case '\b':
					out = append(out, '\\', 'b')
				case '\f':
					out = append(out, '\\', 'f')
				case '\n':
					out = append(out, '\\', 'n')
				case '\r':
					out = append(out, '\\', 'r')
				case '\t':
					out = append(out, '\\', 't')
				default:
					out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				}
			case line && (c == '<' || c == '>' || c == '&'):
				out = append(append(out, s[start:i]...), '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				i++
				continue
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return out, errDeclined // protojson refuses it: so will JSONPb
		}
		if line && (r == '\u2028' || r == '\u2029') {
			out = append(append(out, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + n
		}
		i += n
	}
	return append(append(out, s[start:]...), '"'), nil
}

// compactLine appends src as json.Marshal writes a json.RawMessage holding
// it: compacted, with <, >, &, U+2028 and U+2029 escaped.
func compactLine(out, src []byte) []byte {
	var c, h bytes.Buffer
	if err := json.Compact(&c, src); err != nil {
		return append(out, src...) // not from protojson: cannot happen
	}
	json.HTMLEscape(&h, c.Bytes())
	return append(out, h.Bytes()...)
}
