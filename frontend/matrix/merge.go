package matrix

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/knowingnode/knowingnode/frontend/fanout"
	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

const codeOK = "OK"

// cell accumulates one row's calls to one backend over the rounds. The
// latencies of its successful calls are kept whole: a matrix is bounded by
// its cost (MaxCalls), so the samples are too, and merged quantiles (a
// collapsed cell, a locality) come from the union of samples, exactly.
type cell struct {
	byCode   map[string]int32
	lats     []time.Duration // of the OK calls
	notSent  int32
	draining int32
	message  string
}

func (c *cell) add(o *cell) {
	if c.byCode == nil {
		c.byCode = map[string]int32{}
	}
	for k, v := range o.byCode {
		c.byCode[k] += v
	}
	c.lats = append(c.lats, o.lats...)
	c.notSent += o.notSent
	c.draining += o.draining
	if c.message == "" {
		c.message = o.message
	}
}

// backendKey names a backend before it is resolved: the pod that answered,
// or, for a call that failed, the address it was made to.
type backendKey struct {
	pod, addr string
}

type cellKey struct {
	row string // the peer's address
	col backendKey
}

type row struct {
	addr     string
	identity *knowingnodev1.Identity
	err      string
}

type path struct {
	target string
	mode   knowingnodev1.DiscoveryMode
	cells  map[cellKey]*cell
	// What discovery tells of an address without calling it: the pod of a
	// StatefulSet per-pod name or of an EndpointSlice's targetRef.
	hints map[string]string
}

type pod struct {
	node, zone string
	addrs      []string
}

// merger gathers the peers' fan-out answers into a matrix. Safe for
// concurrent use: every peer's rounds add to it as they come back.
type merger struct {
	mu    sync.Mutex
	rows  map[string]*row // by peer address
	paths []*path
	pods  map[string]*pod // backend pods by name
	// address -> pods that answered there: one pod for a pod IP, several
	// behind a ClusterIP VIP (whose failures then stay the VIP's).
	answered map[string]map[string]bool
}

func newMerger(targets []string) *merger {
	m := &merger{rows: map[string]*row{}, pods: map[string]*pod{}, answered: map[string]map[string]bool{}}
	for _, t := range targets {
		m.paths = append(m.paths, &path{target: t, cells: map[cellKey]*cell{}, hints: map[string]string{}})
	}
	return m
}

func (m *merger) rowOf(addr string) *row {
	r, ok := m.rows[addr]
	if !ok {
		r = &row{addr: addr}
		m.rows[addr] = r
	}
	return r
}

// fail records that a peer's round failed as a whole.
func (m *merger) fail(peerAddr string, err string) *knowingnodev1.MatrixRound {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rowOf(peerAddr)
	if r.err == "" {
		r.err = err
	}
	return &knowingnodev1.MatrixRound{Row: m.rowMessage(r)}
}

// add merges one round of one peer over path pi, and returns what it
// changed.
func (m *merger) add(peerAddr string, pi, round int, resp *knowingnodev1.FanOutResponse) *knowingnodev1.MatrixRound {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rowOf(peerAddr)
	if resp.GetFrontend() != nil {
		r.identity = resp.GetFrontend()
	}
	p := m.paths[pi]
	p.mode = resp.GetDiscovery().GetMode()
	for _, ep := range resp.GetDiscovery().GetEndpoints() {
		if name := hintedPod(p.mode, ep); name != "" {
			p.hints[ep.GetAddress()] = name
		}
	}
	touched := map[cellKey]bool{}
	for _, br := range resp.GetResults() {
		k := backendKey{addr: br.GetAddress()}
		c := &cell{byCode: map[string]int32{}}
		switch {
		case br.GetIdentity() != nil:
			id := br.GetIdentity()
			k = backendKey{pod: podKey(id, br.GetAddress())}
			pd, ok := m.pods[k.pod]
			if !ok {
				pd = &pod{}
				m.pods[k.pod] = pd
			}
			pd.node, pd.zone = id.GetNodeName(), id.GetZone()
			if !slices.Contains(pd.addrs, br.GetAddress()) {
				pd.addrs = append(pd.addrs, br.GetAddress())
			}
			if m.answered[br.GetAddress()] == nil {
				m.answered[br.GetAddress()] = map[string]bool{}
			}
			m.answered[br.GetAddress()][k.pod] = true
			c.byCode[codeOK] = max(br.GetCalls(), 1)
			c.lats = append(c.lats, br.GetLatency().AsDuration())
		case br.GetCode() == fanout.CodeDraining:
			c.draining = max(br.GetCalls(), 1)
		case br.GetLatency().AsDuration() == 0:
			// The fan-out's deadline passed before its turn: never sent.
			c.notSent = max(br.GetCalls(), 1)
		default:
			c.byCode[br.GetCode()] = max(br.GetCalls(), 1)
			c.message = br.GetMessage()
		}
		ck := cellKey{row: peerAddr, col: k}
		have, ok := p.cells[ck]
		if !ok {
			have = &cell{}
			p.cells[ck] = have
		}
		have.add(c)
		touched[ck] = true
	}
	out := &knowingnodev1.MatrixRound{Target: p.target, Row: m.rowMessage(r), Round: int32(round)}
	resolve := m.resolver(p)
	cols := map[string]bool{}
	// The touched cells, merged with the other cells that resolve to the
	// same column now.
	byCol := map[string]*cell{}
	for ck, c := range p.cells {
		if ck.row != peerAddr {
			continue
		}
		col := resolve(ck.col)
		if _, ok := byCol[col]; !ok {
			byCol[col] = &cell{}
		}
		byCol[col].add(c)
		if touched[ck] {
			cols[col] = true
		}
	}
	for _, col := range sortedKeys(cols) {
		out.Cells = append(out.Cells, cellMessage(out.Row.Key, col, byCol[col]))
		out.Columns = append(out.Columns, m.columnMessage(col))
	}
	return out
}

// hintedPod is the pod discovery names for an endpoint, if any: the
// EndpointSlice's targetRef, or a StatefulSet per-pod DNS name's first label.
func hintedPod(mode knowingnodev1.DiscoveryMode, ep *knowingnodev1.Endpoint) string {
	if ref, ok := strings.CutPrefix(ep.GetSlice().GetTargetRef(), "Pod/"); ok {
		return ref
	}
	if mode == knowingnodev1.DiscoveryMode_DISCOVERY_MODE_STATEFULSET {
		if first, _, ok := strings.Cut(ep.GetDnsName(), "."); ok {
			return first
		}
	}
	return ""
}

// podKey names a backend pod: its name, or where it answered when it has none.
func podKey(id *knowingnodev1.Identity, addr string) string {
	if id.GetPodName() != "" {
		return id.GetPodName()
	}
	return addr
}

// resolver returns the column of a backend key: the pod's name, or for a
// failed call the one pod its address is known by (that answered there, or
// discovery named), else the address itself.
func (m *merger) resolver(p *path) func(backendKey) string {
	return func(k backendKey) string {
		if k.pod != "" {
			return k.pod
		}
		if pods := m.answered[k.addr]; len(pods) == 1 {
			for name := range pods {
				return name
			}
		}
		if name := p.hints[k.addr]; name != "" {
			return name
		}
		return k.addr
	}
}

func (m *merger) rowKey(r *row) string {
	if r.identity.GetPodName() != "" {
		return r.identity.GetPodName()
	}
	return r.addr
}

func (m *merger) rowMessage(r *row) *knowingnodev1.MatrixPod {
	return &knowingnodev1.MatrixPod{
		Key:       m.rowKey(r),
		PodName:   r.identity.GetPodName(),
		NodeName:  r.identity.GetNodeName(),
		Zone:      r.identity.GetZone(),
		Addresses: []string{r.addr},
		Error:     r.err,
	}
}

func (m *merger) columnMessage(key string) *knowingnodev1.MatrixPod {
	c := &knowingnodev1.MatrixPod{Key: key}
	if pd, ok := m.pods[key]; ok {
		c.PodName, c.NodeName, c.Zone, c.Addresses = key, pd.node, pd.zone, slices.Clone(pd.addrs)
	} else {
		c.Addresses = []string{key}
	}
	return c
}

// snapshot is the whole matrix so far.
func (m *merger) snapshot() *knowingnodev1.MatrixResponse {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp := &knowingnodev1.MatrixResponse{}
	rowMsgs := map[string]*knowingnodev1.MatrixPod{} // by peer address
	for _, r := range m.rows {
		rm := m.rowMessage(r)
		rowMsgs[r.addr] = rm
		resp.Rows = append(resp.Rows, rm)
	}
	sortPods(resp.Rows)
	colSeen := map[string]bool{}
	for _, p := range m.paths {
		resolve := m.resolver(p)
		cells := map[[2]string]*cell{}
		for ck, c := range p.cells {
			k := [2]string{rowMsgs[ck.row].Key, resolve(ck.col)}
			if cells[k] == nil {
				cells[k] = &cell{}
			}
			cells[k].add(c)
			colSeen[k[1]] = true
		}
		resp.Paths = append(resp.Paths, m.pathMessage(p, cells, rowMsgs))
	}
	for col := range colSeen {
		resp.Columns = append(resp.Columns, m.columnMessage(col))
	}
	sortPods(resp.Columns)
	return resp
}

func (m *merger) pathMessage(p *path, cells map[[2]string]*cell, rows map[string]*knowingnodev1.MatrixPod) *knowingnodev1.MatrixPath {
	pm := &knowingnodev1.MatrixPath{Target: p.target, Mode: p.mode}
	rowNode, rowZone := map[string]string{}, map[string]string{}
	for _, r := range rows {
		rowNode[r.Key], rowZone[r.Key] = r.NodeName, r.Zone
	}
	colNode, colZone := func(k string) string { return m.pods[k].nodeName() }, func(k string) string { return m.pods[k].zoneName() }
	byNode, byZone := map[[2]string]*cell{}, map[[2]string]*cell{}
	var loc [4]cell // same node, same zone, cross zone, unknown zone
	keys := make([][2]string, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	for _, k := range keys {
		c := cells[k]
		pm.Cells = append(pm.Cells, cellMessage(k[0], k[1], c))
		rn, cn, rz, cz := rowNode[k[0]], colNode(k[1]), rowZone[k[0]], colZone(k[1])
		addTo(byNode, [2]string{rn, cn}, c)
		addTo(byZone, [2]string{rz, cz}, c)
		switch {
		case cn == "": // a backend that never answered: its node is unknown
			loc[3].add(c)
		case rn != "" && rn == cn:
			loc[0].add(c)
		case rz == "" || cz == "":
			loc[3].add(c)
		case rz == cz:
			loc[1].add(c)
		default:
			loc[2].add(c)
		}
	}
	pm.NodeCells = collapsed(byNode)
	pm.ZoneCells = collapsed(byZone)
	s := &knowingnodev1.MatrixSummary{
		SameNode: locality(&loc[0]), SameZone: locality(&loc[1]), CrossZone: locality(&loc[2]), UnknownZone: locality(&loc[3]),
	}
	var parts []string
	for i, name := range []string{"same-node", "same-zone", "cross-zone", "unknown-zone"} {
		l := []*knowingnodev1.MatrixLocality{s.SameNode, s.SameZone, s.CrossZone, s.UnknownZone}[i]
		if l.Calls == 0 {
			continue
		}
		q := "p50 - p99 -"
		if l.Ok > 0 {
			q = fmt.Sprintf("p50 %v p99 %v", l.LatencyP50.AsDuration().Round(time.Microsecond), l.LatencyP99.AsDuration().Round(time.Microsecond))
		}
		parts = append(parts, fmt.Sprintf("%s %s (%d ok, %d failed)", name, q, l.Ok, l.Failed))
	}
	s.Line = strings.Join(parts, "; ")
	pm.Summary = s
	return pm
}

func (p *pod) nodeName() string {
	if p == nil {
		return ""
	}
	return p.node
}

func (p *pod) zoneName() string {
	if p == nil {
		return ""
	}
	return p.zone
}

func addTo(m map[[2]string]*cell, k [2]string, c *cell) {
	if m[k] == nil {
		m[k] = &cell{}
	}
	m[k].add(c)
}

func collapsed(m map[[2]string]*cell) []*knowingnodev1.MatrixCell {
	keys := make([][2]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	out := make([]*knowingnodev1.MatrixCell, 0, len(keys))
	for _, k := range keys {
		out = append(out, cellMessage(k[0], k[1], m[k]))
	}
	return out
}

func cellMessage(rowKey, col string, c *cell) *knowingnodev1.MatrixCell {
	mc := &knowingnodev1.MatrixCell{Row: rowKey, Column: col, ByCode: map[string]int32{}, NotSent: c.notSent, Draining: c.draining, Message: c.message}
	worst, worstN := "", int32(0)
	for code, n := range c.byCode {
		mc.ByCode[code] = n
		mc.Calls += n
		if code == codeOK {
			mc.Ok = n
		} else if n > worstN || (n == worstN && code < worst) {
			worst, worstN = code, n
		}
	}
	switch {
	case worst != "":
		mc.Code = worst
	case mc.Ok > 0:
		mc.Code = codeOK
	case c.draining > 0:
		mc.Code = fanout.CodeDraining
	default:
		mc.Code = "NOT_SENT"
	}
	mc.LatencyP50, mc.LatencyP99 = quantiles(c.lats)
	return mc
}

func locality(c *cell) *knowingnodev1.MatrixLocality {
	l := &knowingnodev1.MatrixLocality{}
	for code, n := range c.byCode {
		l.Calls += n
		if code == codeOK {
			l.Ok += n
		} else {
			l.Failed += n
		}
	}
	l.LatencyP50, l.LatencyP99 = quantiles(c.lats)
	return l
}

// quantiles are nearest-rank p50 and p99 over lats; nil when empty.
func quantiles(lats []time.Duration) (p50, p99 *durationpb.Duration) {
	if len(lats) == 0 {
		return nil, nil
	}
	s := slices.Clone(lats)
	slices.Sort(s)
	q := func(p int) *durationpb.Duration {
		i := (p*len(s)+99)/100 - 1
		return durationpb.New(s[max(i, 0)])
	}
	return q(50), q(99)
}

func sortPods(ps []*knowingnodev1.MatrixPod) {
	slices.SortFunc(ps, func(a, b *knowingnodev1.MatrixPod) int {
		return cmp.Or(cmp.Compare(a.NodeName, b.NodeName), cmp.Compare(a.Key, b.Key))
	})
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
