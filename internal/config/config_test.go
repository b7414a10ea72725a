package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// testSet is a small Set of every flag kind, as a binary would define it.
type testSet struct {
	set   *Set
	addr  string
	delay time.Duration
	n     int
	rate  float64
	on    bool
}

func newTestSet() *testSet {
	t := &testSet{set: New("prog")}
	t.set.String(&t.addr, "addr", "ADDR", ":9090", "listen address")
	t.set.Duration(&t.delay, "delay", "DELAY", 5*time.Second, "a delay")
	t.set.Int(&t.n, "n", "N", 3, "a count")
	t.set.Float(&t.rate, "rate", "RATE", 0.5, "a rate")
	t.set.Bool(&t.on, "on", "ON", false, "a switch")
	return t
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParsePrecedence(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantAddr  string
		wantDelay time.Duration
		wantN     int
		wantRate  float64
		wantOn    bool
	}{
		{
			name:     "defaults",
			wantAddr: ":9090", wantDelay: 5 * time.Second, wantN: 3, wantRate: 0.5,
		},
		{
			name:     "env beats default",
			env:      map[string]string{"ADDR": "127.0.0.1:1", "DELAY": "1s", "N": "7", "RATE": "0.25", "ON": "true"},
			wantAddr: "127.0.0.1:1", wantDelay: time.Second, wantN: 7, wantRate: 0.25, wantOn: true,
		},
		{
			name:     "flag beats env",
			args:     []string{"-addr", "127.0.0.1:2", "--delay=2s", "-n", "8", "-rate", "0.75", "-on=false"},
			env:      map[string]string{"ADDR": "127.0.0.1:1", "DELAY": "1s", "N": "7", "RATE": "0.25", "ON": "true"},
			wantAddr: "127.0.0.1:2", wantDelay: 2 * time.Second, wantN: 8, wantRate: 0.75, wantOn: false,
		},
		{
			name:     "flag, env and default mixed",
			args:     []string{"-n", "9"},
			env:      map[string]string{"N": "7", "DELAY": "3s"},
			wantAddr: ":9090", wantDelay: 3 * time.Second, wantN: 9, wantRate: 0.5,
		},
		{
			name:     "empty env means unset",
			env:      map[string]string{"ADDR": "", "N": ""},
			wantAddr: ":9090", wantDelay: 5 * time.Second, wantN: 3, wantRate: 0.5,
		},
		{
			// A flag given with the default value is still given: the
			// environment must not override an explicit choice.
			name:     "flag equal to default still beats env",
			args:     []string{"-addr", ":9090"},
			env:      map[string]string{"ADDR": "127.0.0.1:1"},
			wantAddr: ":9090", wantDelay: 5 * time.Second, wantN: 3, wantRate: 0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSet()
			if err := s.set.Parse(tt.args, envOf(tt.env)); err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if s.addr != tt.wantAddr || s.delay != tt.wantDelay || s.n != tt.wantN || s.rate != tt.wantRate || s.on != tt.wantOn {
				t.Errorf("got addr=%q delay=%v n=%d rate=%v on=%v; want addr=%q delay=%v n=%d rate=%v on=%v",
					s.addr, s.delay, s.n, s.rate, s.on, tt.wantAddr, tt.wantDelay, tt.wantN, tt.wantRate, tt.wantOn)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings the one-line error must contain
	}{
		{
			name: "bad env duration",
			env:  map[string]string{"DELAY": "soon"},
			want: []string{"DELAY", "-delay", `"soon"`},
		},
		{
			name: "bad env int",
			env:  map[string]string{"N": "many"},
			want: []string{"N", "-n", `"many"`},
		},
		{
			name: "bad env bool",
			env:  map[string]string{"ON": "maybe"},
			want: []string{"ON", "-on", `"maybe"`},
		},
		{
			name: "bad env ignored when the flag is given",
			args: []string{"-delay", "soon"},
			env:  map[string]string{"DELAY": "1s"},
			want: []string{"-delay", `"soon"`},
		},
		{
			name: "bad flag value",
			args: []string{"-n", "many"},
			want: []string{"-n", `"many"`},
		},
		{
			name: "unknown flag",
			args: []string{"-nope"},
			want: []string{"-nope", "not defined"},
		},
		{
			name: "extra argument",
			args: []string{"-n", "1", "extra"},
			want: []string{`"extra"`},
		},
		{
			name: "two bad env values both reported",
			env:  map[string]string{"DELAY": "soon", "RATE": "high"},
			want: []string{"DELAY", "-delay", "RATE", "-rate"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSet()
			err := s.set.Parse(tt.args, envOf(tt.env))
			if err == nil {
				t.Fatal("Parse succeeded; want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		s := newTestSet()
		if err := s.set.Parse([]string{arg}, envOf(nil)); !errors.Is(err, ErrHelp) {
			t.Errorf("Parse(%s) = %v; want ErrHelp", arg, err)
		}
	}
}

func TestUsageNamesEnv(t *testing.T) {
	s := newTestSet()
	var b strings.Builder
	s.set.Usage(&b)
	for _, w := range []string{"-addr", "(env ADDR)", "-delay", "(env DELAY)"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("usage lacks %q:\n%s", w, b.String())
		}
	}
}

func TestEnvUndefinedFlagPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Env on an undefined flag did not panic")
		}
	}()
	New("prog").Env("missing", "MISSING")
}

func TestCheck(t *testing.T) {
	if err := Check(true, "n", "ignored"); err != nil {
		t.Errorf("Check(true) = %v", err)
	}
	err := Check(false, "n", "%d is outside 1..%d", 0, 5)
	if err == nil || err.Error() != "invalid value for flag -n: 0 is outside 1..5" {
		t.Errorf("Check(false) = %v", err)
	}
}

// NaN compares false with everything, so no range check written as
// "x < lo || x > hi" catches it: a float flag refuses it, and the
// infinities, when parsed.
func TestFloatRefusesNonFinite(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "+Inf", "-Inf", "1e999", "x"} {
		var f float64
		s := New("t")
		s.Float(&f, "rate", "RATE", 1, "")
		if err := s.Parse([]string{"--rate", v}, func(string) string { return "" }); err == nil {
			t.Errorf("--rate %s accepted as %v", v, f)
		}
		s = New("t")
		s.Float(&f, "rate", "RATE", 1, "")
		if err := s.Parse(nil, func(string) string { return v }); err == nil || !strings.Contains(err.Error(), "RATE") {
			t.Errorf("RATE=%s: %v, want an error naming the variable", v, err)
		}
	}
	var f float64
	s := New("t")
	s.Float(&f, "rate", "RATE", 1, "")
	if err := s.Parse([]string{"--rate", "2.5"}, func(string) string { return "" }); err != nil || f != 2.5 {
		t.Errorf("--rate 2.5: %v, %v", f, err)
	}
}

func TestCheckListenAddr(t *testing.T) {
	for _, c := range []struct {
		addr     string
		optional bool
		ok       bool
	}{
		{":8080", false, true}, {"127.0.0.1:0", false, true}, {"[::1]:9090", false, true}, {"localhost:65535", false, true},
		{"", true, true}, {"", false, false}, {"8080", false, false}, {":http", false, false}, {":65536", false, false}, {"host", true, false},
	} {
		if err := CheckListenAddr("a", c.addr, c.optional); (err == nil) != c.ok {
			t.Errorf("%q optional=%v: %v, want ok=%v", c.addr, c.optional, err, c.ok)
		}
	}
}
