package fault

import (
	"context"
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const identityMethod = "/knowingnode.v1.IdentityService/GetIdentity"

// call runs the interceptor once and reports whether the handler ran.
func call(ctx context.Context, ic grpc.UnaryServerInterceptor, method string) (ran bool, err error) {
	_, err = ic(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
		ran = true
		return "ok", nil
	})
	return ran, err
}

func constant(v float64) func() float64 { return func() float64 { return v } }

func TestLatency(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		rnd      float64
		deadline time.Duration // of the caller
		wantRan  bool
		wantCode codes.Code
	}{
		// The caller gives up before the added latency is over: the call is
		// not answered before the latency, and the handler never runs.
		{"latency beyond the deadline", Config{Latency: time.Minute}, 0, 20 * time.Millisecond, false, codes.DeadlineExceeded},
		// Jitter is scaled by rnd: half of two minutes is beyond the deadline...
		{"jitter beyond the deadline", Config{Jitter: 2 * time.Minute}, 0.5, 20 * time.Millisecond, false, codes.DeadlineExceeded},
		// ...and none of it is nothing, so the call passes at once.
		{"jitter scaled to zero", Config{Jitter: 2 * time.Minute}, 0, time.Minute, true, codes.OK},
		{"short latency within the deadline", Config{Latency: time.Millisecond}, 0, time.Minute, true, codes.OK},
		{"no faults", Config{}, 0.99, time.Minute, true, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
			defer cancel()
			ran, err := call(ctx, Interceptor(tt.cfg, constant(tt.rnd)), identityMethod)
			if ran != tt.wantRan || status.Code(err) != tt.wantCode {
				t.Errorf("handler ran %v, err %v; want ran %v, code %v", ran, err, tt.wantRan, tt.wantCode)
			}
		})
	}
}

func TestLatencyCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := call(ctx, Interceptor(Config{Latency: time.Minute}, nil), identityMethod)
		done <- err
	}()
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled during latency: %v; want CANCELED", err)
	}
}

func TestErrorRate(t *testing.T) {
	const calls = 1000
	tests := []struct {
		rate float64
		code codes.Code
		tol  int // allowed distance from rate*calls
	}{
		{0, codes.Unavailable, 0},
		{0.01, codes.Unavailable, 10},
		{0.3, codes.ResourceExhausted, 50},
		{0.5, codes.Internal, 50},
		{1, codes.PermissionDenied, 0},
	}
	for _, tt := range tests {
		t.Run(codes.Code(tt.code).String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2)) // deterministic
			ic := Interceptor(Config{ErrorRate: tt.rate, ErrorCode: tt.code}, r.Float64)
			failed := 0
			for range calls {
				ran, err := call(t.Context(), ic, identityMethod)
				switch {
				case err == nil && ran:
				case err != nil && !ran:
					failed++
					if status.Code(err) != tt.code {
						t.Fatalf("injected %v; want code %v", err, tt.code)
					}
				default:
					t.Fatalf("handler ran %v with err %v", ran, err)
				}
			}
			want := int(tt.rate * calls)
			if failed < want-tt.tol || failed > want+tt.tol {
				t.Errorf("rate %v: %d of %d failed; want %d±%d", tt.rate, failed, calls, want, tt.tol)
			}
		})
	}
}

func TestHealthAndReflectionUnaffected(t *testing.T) {
	worst := Config{Latency: time.Minute, ErrorRate: 1, ErrorCode: codes.Unavailable}
	ic := Interceptor(worst, constant(0))
	for _, m := range []string{
		"/grpc.health.v1.Health/Check",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
		"/knowingnode.v1alpha.IdentityService/GetIdentity", // another package, even if similar
	} {
		// A short deadline: if the latency applied, the call would fail.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute/2)
		ran, err := call(ctx, ic, m)
		cancel()
		if !ran || err != nil {
			t.Errorf("%s: handler ran %v, err %v; want untouched", m, ran, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if ran, err := call(ctx, ic, "/knowingnode.v1.FanOutService/FanOut"); ran || err == nil {
		t.Errorf("FanOut: handler ran %v, err %v; want a fault", ran, err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantFlag string
	}{
		{"zero", Config{}, ""},
		{"all in range", Config{Latency: time.Second, Jitter: time.Minute, ErrorRate: 1, ErrorCode: codes.Aborted}, ""},
		{"negative latency", Config{Latency: -1}, "-fault-latency"},
		{"latency too long", Config{Latency: time.Hour}, "-fault-latency"},
		{"negative jitter", Config{Jitter: -1}, "-fault-jitter"},
		{"jitter too long", Config{Jitter: time.Minute + 1}, "-fault-jitter"},
		{"negative rate", Config{ErrorRate: -0.1}, "-fault-error-rate"},
		{"rate above one", Config{ErrorRate: 1.5}, "-fault-error-rate"},
		{"OK as an error", Config{ErrorRate: 0.5, ErrorCode: codes.OK}, "-fault-error-code"},
		{"OK with no errors is fine", Config{ErrorCode: codes.OK}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantFlag == "" && err != nil:
				t.Errorf("Validate = %v; want nil", err)
			case tt.wantFlag != "" && (err == nil || !strings.Contains(err.Error(), tt.wantFlag)):
				t.Errorf("Validate = %v; want an error naming %s", err, tt.wantFlag)
			}
		})
	}
}

func TestEnabled(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want bool
	}{
		{Config{}, false},
		{Config{ErrorCode: codes.Internal}, false}, // a code alone injects nothing
		{Config{Latency: 1}, true},
		{Config{Jitter: 1}, true},
		{Config{ErrorRate: 0.1}, true},
	} {
		if got := tt.cfg.Enabled(); got != tt.want {
			t.Errorf("%+v.Enabled() = %v", tt.cfg, got)
		}
	}
}

func TestCodeFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    codes.Code
		wantErr bool
	}{
		{"UNAVAILABLE", codes.Unavailable, false},
		{"deadline_exceeded", codes.DeadlineExceeded, false},
		{"14", codes.Unavailable, false},
		{"0", codes.OK, false},
		{"17", 0, true},
		{"Unavailable!", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		c := codes.Unknown
		f := CodeFlag{Code: &c}
		err := f.Set(tt.in)
		if (err != nil) != tt.wantErr || (err == nil && c != tt.want) {
			t.Errorf("Set(%q) = %v, code %v; want %v (err %v)", tt.in, err, c, tt.want, tt.wantErr)
		}
	}
	// As a flag: the error names the flag, and String shows the canonical name.
	c := codes.Unavailable
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	fs.Var(CodeFlag{Code: &c}, "fault-error-code", "")
	if err := fs.Parse([]string{"-fault-error-code", "nope"}); err == nil || !strings.Contains(err.Error(), "-fault-error-code") {
		t.Errorf("bad code: %v", err)
	}
	if err := fs.Parse([]string{"-fault-error-code", "resource_exhausted"}); err != nil {
		t.Fatal(err)
	}
	if got := fs.Lookup("fault-error-code").Value.String(); got != "RESOURCE_EXHAUSTED" {
		t.Errorf("String() = %q", got)
	}
	if (CodeFlag{}).String() != "" {
		t.Error("zero CodeFlag String() not empty")
	}
}
