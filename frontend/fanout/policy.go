package fanout

// The BALANCED policies, over the pool's own connections, one per endpoint.
//
// Each does what grpc-go's balancer of the same name does (v1.85:
// pick_first, round_robin, weighted_round_robin, least_request_experimental,
// ring_hash_experimental), but none can be that balancer: a grpc-go balancer
// picks among the SubConns of one ClientConn, which it creates itself, while
// the pool's connections are ClientConns of their own, one per endpoint, kept
// for EACH (a second set of connections in one channel cost ~100 MB at 1,000
// endpoints). grpc-go exports neither its pickers nor its schedulers, and
// balancer.SubConn cannot be implemented outside grpc-go. So each policy is
// rewritten here from grpc-go's source, keeping its arithmetic: the weight
// formula, blackout, expiration and EDF scheduler of weighted_round_robin,
// the two random choices of least_request, and the ring of ring_hash
// (xxhash, the same ring size and points, so that a key lands on the same
// address as under grpc-go). TestPolicyAgreesWithGRPC holds them to grpc-go's
// own over the same backends.
//
// Where they differ, on purpose:
//   - every policy picks READY connections only (ring_hash: not in
//     TRANSIENT_FAILURE), falling back to its first choice when none is, whose
//     channel then waits or fails; grpc-go's balancers do the same with
//     their SubConns, but they learn of a state change at once, where these
//     read the state at the pick;
//   - a call that met UNAVAILABLE is tried again (up to 3 attempts, as a
//     retry policy would) on another pick that excludes the endpoints already
//     tried: under ring_hash, the next endpoint on the ring;
//   - pick_first takes the first READY endpoint in discovery order at each
//     pick; grpc-go's stays on the address it connected to until that fails.
//     Over a steady set of endpoints both send every call to the first one;
//   - weighted_round_robin's scheduler covers every endpoint and skips those
//     not READY at the pick (grpc-go rebuilds it over the READY ones at each
//     change); its weights come from the per-call trailers of BALANCED calls
//     under any policy, not only its own, and a connection found not READY
//     when the scheduler is rebuilt starts its blackout again, as a
//     reconnected SubConn does.

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/knowingnode/knowingnode/internal/balancing"
)

// policy is a BALANCED balancing policy.
type policy uint8

const (
	policyRoundRobin policy = iota // the default
	policyPickFirst
	policyWeightedRoundRobin
	policyLeastRequest
	policyRingHash
)

// policyNames are the policies' names, balancing's.
var policyNames = [...]string{
	policyRoundRobin:         balancing.RoundRobin,
	policyPickFirst:          balancing.PickFirst,
	policyWeightedRoundRobin: balancing.WeightedRoundRobin,
	policyLeastRequest:       balancing.LeastRequest,
	policyRingHash:           balancing.RingHash,
}

func (p policy) String() string { return policyNames[p] }

// Limits of a request's ring_hash keys.
const (
	MaxHashKeys   = MaxCount
	MaxHashKeyLen = 256
)

// parsePolicy reads a request's policy (empty: round_robin) and checks its
// hash keys.
func parsePolicy(name string, keys []string) (policy, error) {
	p := policyRoundRobin
	if name != "" {
		if err := balancing.Check(name); err != nil {
			return 0, status.Errorf(codes.InvalidArgument, "policy: %v", err)
		}
		p = policy(slices.Index(policyNames[:], name))
	}
	if len(keys) > MaxHashKeys {
		return 0, status.Errorf(codes.InvalidArgument, "hash_keys: %d keys, at most %d", len(keys), MaxHashKeys)
	}
	for i, k := range keys {
		if len(k) > MaxHashKeyLen {
			return 0, status.Errorf(codes.InvalidArgument, "hash_keys[%d] is %d bytes long, at most %d", i, len(k), MaxHashKeyLen)
		}
	}
	return p, nil
}

// WRR tunes weighted_round_robin as grpc-go's service config does; zero
// values take grpc-go's defaults but for Blackout, whose zero is none (the
// flag's default is grpc-go's 10s).
type WRR struct {
	// Blackout: how long an endpoint must report before its weight is used.
	Blackout time.Duration
	// Update: how often the weights are read anew (grpc-go: 1s).
	Update time.Duration
	// Expiration: a weight older than this is not used (grpc-go: 3m), and
	// the blackout applies again.
	Expiration time.Duration
}

// grpc-go's defaults (balancer/weightedroundrobin).
const (
	wrrDefaultBlackout   = 10 * time.Second
	wrrDefaultUpdate     = time.Second
	wrrDefaultExpiration = 3 * time.Minute
	wrrMinUpdate         = 100 * time.Millisecond
)

func (c WRR) withDefaults() WRR {
	if c.Update == 0 {
		c.Update = wrrDefaultUpdate
	}
	c.Update = max(c.Update, wrrMinUpdate) // as grpc-go clamps it
	if c.Expiration == 0 {
		c.Expiration = wrrDefaultExpiration
	}
	return c
}

// endpointLB is what the policies keep about one endpoint's connection
// across fan-outs, as grpc-go's balancers keep it per SubConn: its BALANCED
// calls in flight (least_request) and its last load report
// (weighted_round_robin). A new connection (Pool.Renew) starts afresh, as a
// new SubConn does.
type endpointLB struct {
	inflight atomic.Int32

	mu     sync.Mutex
	raw    string           // the last report's bytes, decoded into report
	report balancing.Report // the last report seen
	seen   bool             // whether there was one (a report of zeros is no bytes)
	// weighted_round_robin's state (grpc-go's endpointWeight): the weight of
	// the last report that had one, when that came, and since when reports
	// have come without a gap of the expiration period.
	weight        float64
	lastUpdated   time.Time
	nonEmptySince time.Time
}

// observe reads the load report in a call's trailer, at now; ok is false
// when there is none. Only a report that differs from the last one is
// decoded: a backend encodes its report once per sample, so most calls
// carry the same bytes.
func (e *endpointLB) observe(md metadata.MD, now time.Time) (r balancing.Report, ok bool) {
	v := md[balancing.TrailerKey]
	if len(v) == 0 {
		return balancing.Report{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v[0] != e.raw {
		if r, ok = balancing.ParseTrailer(md); !ok {
			return balancing.Report{}, false
		}
		e.raw, e.report = v[0], r
	}
	e.seen = true
	// grpc-go's OnLoadReport ignores a report without a rate or a
	// utilization: it neither sets the weight nor counts as a report.
	if w := e.report.Weight(); w > 0 {
		e.weight, e.lastUpdated = w, now
		if e.nonEmptySince.IsZero() {
			e.nonEmptySince = now
		}
	}
	return e.report, true
}

// last returns the last report read on the connection; ok is false when
// none was.
func (e *endpointLB) last() (r balancing.Report, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.report, e.seen
}

// usableWeight is grpc-go's endpointWeight.weight: the weight, or 0 when
// there is none yet, it expired (the blackout then starts again), or the
// blackout since the first report has not passed.
func (e *endpointLB) usableWeight(now time.Time, c WRR) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastUpdated.IsZero() {
		return 0
	}
	if now.Sub(e.lastUpdated) >= c.Expiration {
		e.nonEmptySince = time.Time{}
		return 0
	}
	if c.Blackout != 0 && (e.nonEmptySince.IsZero() || now.Sub(e.nonEmptySince) < c.Blackout) {
		return 0
	}
	return e.weight
}

// restart forgets the weight's history, as grpc-go does when a SubConn
// turns READY anew: the next reports start a new blackout.
func (e *endpointLB) restart() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nonEmptySince, e.lastUpdated = time.Time{}, time.Time{}
}

// tries are the endpoints one BALANCED call already tried.
type tries [balancedAttempts]*backend

func (t *tries) has(b *backend) bool {
	for _, x := range t {
		if x == b {
			return true
		}
	}
	return false
}

func ready(b *backend) bool { return b.cc.GetState() == connectivity.Ready }

// readyFrom returns the first endpoint from i on (modulo their number)
// whose connection is READY and that was not tried, or nil.
func readyFrom(bs []*backend, i uint64, t *tries) *backend {
	l := uint64(len(bs))
	for k := range l {
		if b := bs[(i+k)%l]; !t.has(b) && ready(b) {
			return b
		}
	}
	return nil
}

// pick is one attempt's choice of endpoint, with, under
// weighted_round_robin, its weight and share of the picks in the scheduler
// that chose it.
type pick struct {
	b             *backend
	weight, share float64
}

// balancer picks the endpoints of one fan-out's BALANCED calls under its
// policy; the state that outlives a fan-out is the pool's.
type balancer struct {
	p      *Pool
	policy policy
	keys   []string
	wrr    WRR
}

// pick chooses the endpoint of attempt try of call n, hashing h under
// ring_hash (random: no key), at now; never nil while there are endpoints.
func (lb *balancer) pick(bs []*backend, n uint64, h uint64, random bool, now time.Time, t *tries) pick {
	switch lb.policy {
	case policyPickFirst:
		if b := readyFrom(bs, 0, t); b != nil {
			return pick{b: b}
		}
		return pick{b: bs[0]}
	case policyWeightedRoundRobin:
		return lb.p.wrrScheduler(now, lb.wrr).pick(&lb.p.wrrNext, t)
	case policyLeastRequest:
		if b := pickLeastRequest(bs, t); b != nil {
			return pick{b: b}
		}
	case policyRingHash:
		return pick{b: lb.p.hashRing().pick(h, random, t)}
	}
	if b := readyFrom(bs, n, t); b != nil {
		return pick{b: b}
	}
	// None READY: the call's own endpoint, whose channel waits while it
	// connects or fails with why it cannot (a draining pod's health too).
	return pick{b: bs[n%uint64(len(bs))]}
}

// leastRequestChoices is how many endpoints least_request compares
// (grpc-go's choiceCount, default 2).
const leastRequestChoices = 2

// pickLeastRequest is grpc-go's least_request: of endpoints drawn at random
// (with replacement), the one with the fewest calls in flight, the first
// drawn on a tie; nil when none is READY. A draw that falls on an endpoint
// not READY takes the next READY one (grpc-go draws among the READY).
func pickLeastRequest(bs []*backend, t *tries) *backend {
	var (
		best  *backend
		bestN int32
	)
	for range leastRequestChoices {
		b := readyFrom(bs, uint64(rand.Uint32())%uint64(len(bs)), t)
		if b == nil {
			return nil
		}
		if n := b.lb.inflight.Load(); best == nil || n < bestN {
			best, bestN = b, n
		}
	}
	return best
}

// wrrScheduler is weighted_round_robin's picker over one snapshot of the
// endpoints, with the weights of when it was built; rebuilt every update
// period (grpc-go's picker.regenerateScheduler).
type wrrScheduler struct {
	snap    *snapshot
	built   time.Time
	weights []float64 // each endpoint's usable weight; 0: none
	shares  []float64 // the share of the picks each is given
	edf     []uint16  // the scaled weights; nil: round robin
}

// wrrScheduler returns the current scheduler, building one when there is
// none over the current endpoints or the last is an update period old.
func (p *Pool) wrrScheduler(now time.Time, c WRR) *wrrScheduler {
	snap := p.current.Load()
	fresh := func(s *wrrScheduler) bool { return s != nil && s.snap == snap && now.Sub(s.built) < c.Update }
	if s := p.wrr.Load(); fresh(s) {
		return s
	}
	p.wrrMu.Lock()
	defer p.wrrMu.Unlock()
	if s := p.wrr.Load(); fresh(s) {
		return s // another call built it
	}
	s := newWRRScheduler(snap, now, c)
	p.wrr.Store(s)
	return s
}

// maxWeight is what the largest weight scales to (grpc-go's).
const maxWeight = math.MaxUint16

// newWRRScheduler is grpc-go's newScheduler: weights scaled so the largest
// is maxWeight, an endpoint without a usable weight given the mean of the
// others', and round robin when fewer than two have one or all are equal.
func newWRRScheduler(snap *snapshot, now time.Time, c WRR) *wrrScheduler {
	bs := snap.backends
	n := len(bs)
	s := &wrrScheduler{snap: snap, built: now, weights: make([]float64, n), shares: make([]float64, n)}
	var (
		sum, top float64
		numZero  int
	)
	for i, b := range bs {
		if !ready(b) {
			b.lb.restart()
		}
		w := b.lb.usableWeight(now, c)
		s.weights[i] = w
		sum += w
		top = max(top, w)
		if w == 0 {
			numZero++
		}
	}
	roundRobin := func() *wrrScheduler {
		for i := range s.shares {
			s.shares[i] = 1 / float64(n)
		}
		return s
	}
	if n <= 1 || numZero >= n-1 {
		return roundRobin()
	}
	scalingFactor := maxWeight / top
	mean := uint16(math.Round(scalingFactor * sum / float64(n-numZero)))
	edf := make([]uint16, n)
	allEqual := true
	var total float64
	for i, w := range s.weights {
		if w == 0 {
			edf[i] = mean
		} else {
			edf[i] = uint16(math.Round(scalingFactor * w))
			if edf[i] != mean {
				allEqual = false
			}
		}
		total += float64(edf[i])
	}
	if allEqual {
		return roundRobin()
	}
	for i, w := range edf {
		s.shares[i] = float64(w) / total
	}
	s.edf = edf
	return s
}

// nextIndex is grpc-go's edfScheduler.nextIndex (or rrScheduler's): the
// counter's sequence split into the endpoint (the lower part, modulo n) and
// a generation, in which an endpoint is picked weight times per maxWeight
// generations, spread over them.
func (s *wrrScheduler) nextIndex(ctr *atomic.Uint32) int {
	n := uint64(len(s.snap.backends))
	if s.edf == nil {
		return int(uint64(ctr.Add(1)) % n)
	}
	const offset = maxWeight / 2
	for {
		idx := uint64(ctr.Add(1))
		i := idx % n
		generation := idx / n
		weight := uint64(s.edf[i])
		if (weight*generation+i*offset)%maxWeight < maxWeight-weight {
			continue
		}
		return int(i)
	}
}

// pick takes the scheduler's next endpoint that is READY and not tried,
// drawing at most once per endpoint; when none is, round robin decides.
func (s *wrrScheduler) pick(ctr *atomic.Uint32, t *tries) pick {
	bs := s.snap.backends
	for range len(bs) {
		i := s.nextIndex(ctr)
		if b := bs[i]; !t.has(b) && ready(b) {
			return pick{b: b, weight: s.weights[i], share: s.shares[i]}
		}
	}
	i := int(uint64(ctr.Add(1)) % uint64(len(bs)))
	if b := readyFrom(bs, uint64(i), t); b != nil {
		i = slices.Index(bs, b)
	}
	return pick{b: bs[i], weight: s.weights[i], share: s.shares[i]}
}

// The ring's size bounds: grpc-go's defaults (ringhash's
// minRingSize/maxRingSize; its cap, GRPC_RING_HASH_CAP, is 4096 too).
const (
	ringMinSize = 1024
	ringMaxSize = 4096
)

// hashRing is ring_hash's ring over one snapshot of the endpoints.
type hashRing struct {
	snap   *snapshot
	hashes []uint64 // sorted
	owners []int32  // hashes[i] is a point of snap.backends[owners[i]]
}

// hashRing returns the ring over the current endpoints, built once per
// change of them.
func (p *Pool) hashRing() *hashRing {
	snap := p.current.Load()
	if r := p.ring.Load(); r != nil && r.snap == snap {
		return r
	}
	p.ringMu.Lock()
	defer p.ringMu.Unlock()
	if r := p.ring.Load(); r != nil && r.snap == snap {
		return r
	}
	r := newHashRing(snap)
	p.ring.Store(r)
	return r
}

// newHashRing is grpc-go's newRing with every endpoint's weight 1 and its
// address as its hash key: the endpoints in the order of their addresses,
// each given its share of a ring of about ringMinSize points (at least one
// per endpoint, at most ringMaxSize in all), point k of address a hashing
// "a_k" with xxhash; sorted by hash.
func newHashRing(snap *snapshot) *hashRing {
	bs := snap.backends
	order := make([]int32, len(bs))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		if bs[a].ep.Addr < bs[b].ep.Addr {
			return -1
		}
		if bs[a].ep.Addr > bs[b].ep.Addr {
			return 1
		}
		return 0
	})
	nw := 1 / float64(len(bs)) // each endpoint's normalized weight
	minWeight := math.Min(1, nw)
	scale := math.Min(math.Ceil(minWeight*ringMinSize)/minWeight, ringMaxSize)
	type point struct {
		hash  uint64
		owner int32
	}
	points := make([]point, 0, int(math.Ceil(scale)))
	var current, target float64
	for _, i := range order {
		target += scale * nw
		for k := 0; current < target; k++ {
			points = append(points, point{xxhash.Sum64String(bs[i].ep.Addr + "_" + strconv.Itoa(k)), i})
			current++
		}
	}
	slices.SortFunc(points, func(a, b point) int {
		if a.hash < b.hash {
			return -1
		}
		if a.hash > b.hash {
			return 1
		}
		return 0
	})
	r := &hashRing{snap: snap, hashes: make([]uint64, len(points)), owners: make([]int32, len(points))}
	for i, pt := range points {
		r.hashes[i], r.owners[i] = pt.hash, pt.owner
	}
	return r
}

// pick is grpc-go's ring_hash pick: from the first point whose hash is at
// least h (past the last: the first), the first endpoint whose connection
// may take the call. With a key that is any not in TRANSIENT_FAILURE (a
// draining pod's health makes it so), so a key waits for its endpoint to
// connect rather than move; with a random hash (no key), READY only.
// Endpoints already tried are skipped. None: the point's own endpoint.
func (r *hashRing) pick(h uint64, random bool, t *tries) *backend {
	bs := r.snap.backends
	start, _ := slices.BinarySearch(r.hashes, h)
	if start == len(r.hashes) {
		start = 0
	}
	for k := range len(r.hashes) {
		b := bs[r.owners[(start+k)%len(r.hashes)]]
		if t.has(b) {
			continue
		}
		switch st := b.cc.GetState(); {
		case st == connectivity.Ready,
			!random && (st == connectivity.Connecting || st == connectivity.Idle):
			return b
		}
	}
	return bs[r.owners[start]]
}

// hashOf is the hash ring_hash gives a call's key: xxhash of the key, as
// grpc-go hashes the request header's value.
func hashOf(key string) uint64 { return xxhash.Sum64String(key) }
