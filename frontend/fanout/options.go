package fanout

import (
	"errors"
	"strconv"
	"time"

	"github.com/knowingnode/knowingnode/internal/config"
)

// Register adds the fan-out's flags to s, with their defaults; Validate
// checks them once parsed. The frontend's main only wires them.
func (o *Options) Register(s *config.Set) {
	s.Duration(&o.BackendTimeout, "backend-timeout", "BACKEND_TIMEOUT", 2*time.Second, "timeout of one call to one backend")
	s.Duration(&o.DefaultTimeout, "fanout-timeout", "FANOUT_TIMEOUT", 5*time.Second, "default deadline of a whole fan-out")
	s.Int(&o.Concurrency, "fanout-concurrency", "FANOUT_CONCURRENCY", 64, "calls in flight at once within one fan-out")
	// Sized for a 2-core pod: 256 calls in flight is what two cores turn
	// around in a few ms on loopback; beyond it latency grows, not throughput.
	s.Int(&o.MaxFanOuts, "max-fanouts", "MAX_FANOUTS", 32, "fan-outs running at once in the process; more are refused with RESOURCE_EXHAUSTED (HTTP 429)")
	s.Int(&o.MaxBackendCalls, "max-backend-calls", "MAX_BACKEND_CALLS", 256, "backend calls in flight over all fan-outs; a fan-out reserves min(fanout-concurrency, its calls) and is refused with RESOURCE_EXHAUSTED (HTTP 429) when they do not fit")
	s.Var(notFlag{&o.NoStreaming}, "streaming", "STREAMING", "serve WatchTargets and FanOutStream (REST: /v1/targets:watch, /v1/fanout:stream); when false they answer UNIMPLEMENTED (HTTP 501) and the page polls (default true)")
	s.Duration(&o.WRR.Blackout, "wrr-blackout", "WRR_BLACKOUT", wrrDefaultBlackout, "BALANCED weighted_round_robin: how long an endpoint must report its load (ORCA) before its weight is used (grpc-go's blackoutPeriod); 0: at once")
	s.Duration(&o.WRR.Update, "wrr-update", "WRR_UPDATE", wrrDefaultUpdate, "BALANCED weighted_round_robin: how often the weights are read anew (grpc-go's weightUpdatePeriod; at least 100ms)")
	s.Duration(&o.WRR.Expiration, "wrr-expiration", "WRR_EXPIRATION", wrrDefaultExpiration, "BALANCED weighted_round_robin: a weight without a report for this long is no longer used (grpc-go's weightExpirationPeriod)")
	s.Int(&o.MaxWatchers, "max-watchers", "MAX_WATCHERS", 256, "WatchTargets streams open at once (each page open on the frontend holds one); more are refused with RESOURCE_EXHAUSTED (HTTP 429)")
}

// Validate checks the flags' ranges.
func (o *Options) Validate() error {
	return errors.Join(
		config.Check(o.BackendTimeout > 0 && o.BackendTimeout <= MaxTimeout, "backend-timeout", "%v is outside (0s, %v]", o.BackendTimeout, MaxTimeout),
		config.Check(o.DefaultTimeout > 0 && o.DefaultTimeout <= MaxTimeout, "fanout-timeout", "%v is outside (0s, %v]", o.DefaultTimeout, MaxTimeout),
		config.Check(o.Concurrency >= 1 && o.Concurrency <= 10000, "fanout-concurrency", "%d is outside 1..10000", o.Concurrency),
		config.Check(o.MaxFanOuts >= 1 && o.MaxFanOuts <= 100000, "max-fanouts", "%d is outside 1..100000", o.MaxFanOuts),
		config.Check(o.MaxWatchers >= 1 && o.MaxWatchers <= 100000, "max-watchers", "%d is outside 1..100000", o.MaxWatchers),
		config.Check(o.WRR.Blackout >= 0 && o.WRR.Blackout <= time.Hour, "wrr-blackout", "%v is outside 0s..1h", o.WRR.Blackout),
		config.Check(o.WRR.Update >= wrrMinUpdate && o.WRR.Update <= time.Hour, "wrr-update", "%v is outside %v..1h", o.WRR.Update, wrrMinUpdate),
		config.Check(o.WRR.Expiration >= time.Second && o.WRR.Expiration <= 24*time.Hour, "wrr-expiration", "%v is outside 1s..24h", o.WRR.Expiration),
		config.Check(o.MaxBackendCalls >= o.Concurrency && o.MaxBackendCalls <= 1000000, "max-backend-calls", "%d is outside fanout-concurrency (%d)..1000000", o.MaxBackendCalls, o.Concurrency),
	)
}

// notFlag is a boolean flag that sets the negation of *p: --streaming for
// NoStreaming.
type notFlag struct{ p *bool }

func (f notFlag) IsBoolFlag() bool { return true }
func (f notFlag) String() string {
	if f.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.p)
}
func (f notFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*f.p = !b
	return nil
}
