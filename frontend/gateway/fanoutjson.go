package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// fanOutJSON encodes a fan-out's reply (GET /v1/fanout) and the lines of
// its stream (GET /v1/fanout:stream) byte for byte as runtime.JSONPb does,
// except that each identity's JSON is taken from a cache (identityCache)
// rather than encoded again: the identities were about four fifths of what
// encoding a reply cost, and a backend's identity does not change. It is
// the REST twin of the gRPC splice (fanout.EncodeReply), which writes each
// backend's identity from the bytes it sent.
//
// It writes the frame of the reply itself: the results' strings, latencies
// and counts, and protojson's separator. What it does not write by hand,
// the summary and the discovery state, protojson encodes. It only serves
// the gateway's options, protojson's defaults (newFanOutJSON); anything it
// does not handle (another message, a nil result, an invalid duration or
// string) it declines, and the caller encodes the message as before, so an
// error is the one JSONPb gives. TestFanOutJSONIsJSONPb and FuzzFanOutJSON
// hold it to JSONPb.
type fanOutJSON struct {
	opts protojson.MarshalOptions
	ids  *identityCache
	// What protojson writes between two members or elements: "," or ", ".
	// It adds the space or not for the whole binary (detrand, to keep
	// callers from depending on its bytes), so it is read once from
	// protojson itself.
	sep string
}

// newFanOutJSON returns the encoder for a JSONPb with opts, or nil when the
// options change the encoding in ways it does not write (names, enums as
// numbers, unpopulated fields, indentation): then JSONPb encodes as before.
func newFanOutJSON(opts protojson.MarshalOptions) *fanOutJSON {
	if opts.Multiline || opts.Indent != "" || opts.UseProtoNames || opts.UseEnumNumbers ||
		opts.EmitUnpopulated || opts.EmitDefaultValues {
		return nil
	}
	probe, err := opts.Marshal(&knowingnodev1.BuildInfo{Version: "a", Revision: "b"})
	if err != nil {
		return nil
	}
	sep, ok := bytes.CutPrefix(probe, []byte(`{"version":"a"`))
	if sep, ok = bytes.CutSuffix(sep, []byte(`"revision":"b"}`)); !ok || (string(sep) != "," && string(sep) != ", ") {
		return nil
	}
	return &fanOutJSON{opts: opts, ids: newIdentityCache(opts), sep: string(sep)}
}

// marshal encodes v when it is a fan-out's reply, or the gateway's wrapping
// of a stream's message (map[string]any{"result": *FanOutStreamResponse},
// see runtime.ForwardResponseStream); ok is false for anything else, and
// for what it declines.
func (e *fanOutJSON) marshal(v any) (_ []byte, ok bool) {
	var (
		out []byte
		err error
	)
	switch m := v.(type) {
	case *knowingnodev1.FanOutResponse:
		if m == nil {
			return nil, false
		}
		out, err = e.response(make([]byte, 0, e.sizeHint(len(m.Results))), m, false)
	case map[string]any:
		s, _ := m["result"].(*knowingnodev1.FanOutStreamResponse)
		if len(m) != 1 || s == nil {
			return nil, false
		}
		out, err = e.streamLine(s)
	default:
		return nil, false
	}
	return out, err == nil
}

func (e *fanOutJSON) sizeHint(results int) int { return 2048 + 1536*results }

// streamLine is what JSONPb makes of map[string]any{"result": s}: s in
// protojson, compacted and HTML-escaped as json.Marshal writes a
// json.RawMessage, within {"result": …}.
func (e *fanOutJSON) streamLine(s *knowingnodev1.FanOutStreamResponse) ([]byte, error) {
	out := append(make([]byte, 0, e.sizeHint(1)), `{"result":`...)
	var err error
	switch ev := s.Event.(type) {
	case *knowingnodev1.FanOutStreamResponse_Result:
		if ev.Result == nil {
			return nil, errDeclined
		}
		out = append(out, `{"result":`...)
		out, err = e.result(out, ev.Result, true)
	case *knowingnodev1.FanOutStreamResponse_Done:
		if ev.Done == nil {
			return nil, errDeclined
		}
		out = append(out, `{"done":`...)
		out, err = e.response(out, ev.Done, true)
	default:
		return nil, errDeclined
	}
	return append(out, "}}"...), err
}

// errDeclined is a message the encoder leaves to JSONPb.
var errDeclined = errors.New("gateway: left to protojson")

// member writes the separator unless first, then "name":.
func (e *fanOutJSON) member(out []byte, first *bool, name string, line bool) []byte {
	if !*first {
		out = e.separate(out, line)
	}
	*first = false
	out = append(out, '"')
	out = append(out, name...)
	return append(out, '"', ':')
}

// separate writes what comes between members: a stream line is compacted.
func (e *fanOutJSON) separate(out []byte, line bool) []byte {
	if line {
		return append(out, ',')
	}
	return append(out, e.sep...)
}

// response writes r's members in protojson's order (the fields' order in
// fanout.proto): frontend, target, mode, results, summary, discovery.
func (e *fanOutJSON) response(out []byte, r *knowingnodev1.FanOutResponse, line bool) ([]byte, error) {
	out = append(out, '{')
	first := true
	var err error
	if r.Frontend != nil {
		out = e.member(out, &first, "frontend", line)
		if out, err = e.identity(out, r.Frontend, line); err != nil {
			return nil, err
		}
	}
	if r.Target != "" {
		out = e.member(out, &first, "target", line)
		if out, err = appendString(out, r.Target, line); err != nil {
			return nil, err
		}
	}
	if r.Mode != 0 {
		out = e.member(out, &first, "mode", line)
		if v := r.Mode.Descriptor().Values().ByNumber(r.Mode.Number()); v != nil {
			out = append(append(append(out, '"'), v.Name()...), '"')
		} else {
			out = strconv.AppendInt(out, int64(r.Mode), 10)
		}
	}
	if len(r.Results) > 0 {
		out = e.member(out, &first, "results", line)
		out = append(out, '[')
		for i, res := range r.Results {
			if i > 0 {
				out = e.separate(out, line)
			}
			if res == nil {
				return nil, errDeclined
			}
			if out, err = e.result(out, res, line); err != nil {
				return nil, err
			}
		}
		out = append(out, ']')
	}
	if r.Summary != nil || r.Discovery != nil {
		// Encoded per reply, as the summary changes with each: protojson
		// writes them, their members taken from within its braces.
		b, err := e.opts.Marshal(&knowingnodev1.FanOutResponse{Summary: r.Summary, Discovery: r.Discovery})
		if err != nil {
			return nil, err
		}
		if !first {
			out = e.separate(out, line)
		}
		if line {
			b = compactLine(nil, b)
		}
		out = append(out, b[1:len(b)-1]...)
	}
	return append(out, '}'), nil
}

// result writes one BackendResult: address, dnsName, identity, code,
// message, latency, calls.
func (e *fanOutJSON) result(out []byte, r *knowingnodev1.BackendResult, line bool) ([]byte, error) {
	out = append(out, '{')
	first := true
	var err error
	for _, f := range [...]struct{ name, v string }{{"address", r.Address}, {"dnsName", r.DnsName}} {
		if f.v != "" {
			out = e.member(out, &first, f.name, line)
			if out, err = appendString(out, f.v, line); err != nil {
				return nil, err
			}
		}
	}
	if r.Identity != nil {
		out = e.member(out, &first, "identity", line)
		if out, err = e.identity(out, r.Identity, line); err != nil {
			return nil, err
		}
	}
	for _, f := range [...]struct{ name, v string }{{"code", r.Code}, {"message", r.Message}} {
		if f.v != "" {
			out = e.member(out, &first, f.name, line)
			if out, err = appendString(out, f.v, line); err != nil {
				return nil, err
			}
		}
	}
	if r.Latency != nil {
		out = e.member(out, &first, "latency", line)
		if out, err = appendDuration(out, r.Latency); err != nil {
			return nil, err
		}
	}
	if r.Calls != 0 {
		out = e.member(out, &first, "calls", line)
		out = strconv.AppendInt(out, int64(r.Calls), 10)
	}
	return append(out, '}'), nil
}

func (e *fanOutJSON) identity(out []byte, id *knowingnodev1.Identity, line bool) ([]byte, error) {
	j, err := e.ids.get(id)
	if err != nil {
		return nil, err
	}
	if line {
		return append(out, j.line...), nil
	}
	return append(out, j.plain...), nil
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
			return nil, errDeclined // protojson refuses it: so will JSONPb
		}
		if line && (r == '\u2028' || r == '\u2029') {
			out = append(append(out, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			start = i + n
		}
		i += n
	}
	return append(append(out, s[start:]...), '"'), nil
}

// appendDuration writes d as protojson does: seconds with 0, 3, 6 or 9
// fractional digits and "s"; one out of protojson's range it declines.
func appendDuration(out []byte, d *durationpb.Duration) ([]byte, error) {
	const maxSeconds = 315576000000
	secs, nanos := d.Seconds, int64(d.Nanos)
	if secs < -maxSeconds || secs > maxSeconds || nanos <= -1e9 || nanos >= 1e9 ||
		(secs > 0 && nanos < 0) || (secs < 0 && nanos > 0) {
		return nil, errDeclined
	}
	out = append(out, '"')
	if secs < 0 || nanos < 0 {
		out = append(out, '-')
		secs, nanos = -secs, -nanos
	}
	out = strconv.AppendInt(out, secs, 10)
	if nanos != 0 {
		digits := 9
		for digits > 3 && nanos%1000 == 0 {
			nanos /= 1000
			digits -= 3
		}
		out = append(out, '.')
		frac := strconv.AppendInt(make([]byte, 0, 9), nanos, 10)
		for range digits - len(frac) {
			out = append(out, '0')
		}
		out = append(out, frac...)
	}
	return append(out, 's', '"'), nil
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
