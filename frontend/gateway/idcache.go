package gateway

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"slices"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
)

// The identity cache's bounds. It holds two generations (see identityCache);
// each is cut at half of these, so that the two together stay within them.
// 4096 identities of a pod of the chart (about 1.3 KB of JSON each) is some
// 16 MB; a fan-out over more distinct identities than a generation holds
// only encodes some of them afresh, as before the cache.
const (
	identityCacheEntries = 4096
	identityCacheBytes   = 32 << 20
	// An identity whose JSON and copy (identityJSON.size) are larger than
	// this is encoded every time, never kept: one outsized identity must
	// not push the others out.
	identityCacheMaxEntry = 64 << 10
	// Identities with one hash kept at most: equal hashes are told apart by
	// comparing contents, so a long chain costs comparisons, never a wrong
	// answer; past this, an identity is encoded every time.
	identityCacheChain = 8
)

// identityCache holds the JSON of the backend identities a fan-out's reply
// carries, keyed by their content: a backend's identity does not change from
// one call to the next, so its JSON need not either. A lookup hashes the
// identity's fields and then compares every field with those of the copy
// kept beside the JSON; only an identity equal, field for field, to the one
// the JSON was encoded from is answered from the cache. Neither the pointer
// nor the hash alone decides: an identity changed in place, or two that
// hash alike, are never given each other's JSON.
//
// It is bounded in entries and bytes by two generations: entries are added
// to the current one; when it reaches half the bounds it becomes the
// previous one and the one before is dropped. An entry found in the
// previous generation is carried into the current one, so the identities
// in use stay and those no longer seen (a pod gone) leave within two
// generations.
type identityCache struct {
	opts protojson.MarshalOptions
	seed maphash.Seed

	mu         sync.Mutex
	cur, prev  map[uint64][]*identityJSON
	curEntries int
	curBytes   int
}

// identityJSON is one identity's JSON, as protojson writes it within a
// reply (plain) and as a stream line carries it (line: compacted and with
// <, >, &, U+2028 and U+2029 escaped, as encoding/json writes a
// json.RawMessage), and the copy of the identity it was encoded from.
type identityJSON struct {
	id          *knowingnodev1.Identity // a deep copy: never changed, never handed out
	plain, line []byte
	size        int // what it holds, counted against identityCacheBytes
}

func newIdentityCache(opts protojson.MarshalOptions) *identityCache {
	return &identityCache{opts: opts, seed: maphash.MakeSeed(), cur: map[uint64][]*identityJSON{}}
}

// get returns the JSON of id, encoded once per distinct identity. The bytes
// are shared: the caller copies them into its reply and never changes them.
func (c *identityCache) get(id *knowingnodev1.Identity) (*identityJSON, error) {
	h := c.hash(id)
	c.mu.Lock()
	cur, prev := c.cur[h], c.prev[h]
	c.mu.Unlock()
	// The entries are never changed once made: compared outside the lock.
	for _, e := range cur {
		if identityEqual(e.id, id) {
			return e, nil
		}
	}
	for _, e := range prev {
		if identityEqual(e.id, id) {
			c.add(h, e) // still in use: carried into the current generation
			return e, nil
		}
	}
	e, err := c.encode(id)
	if err != nil || e.size > identityCacheMaxEntry {
		return e, err
	}
	c.add(h, e)
	return e, nil
}

// encode encodes id afresh, keeping a copy of it to compare with.
func (c *identityCache) encode(id *knowingnodev1.Identity) (*identityJSON, error) {
	plain, err := c.opts.Marshal(id)
	if err != nil {
		return nil, err
	}
	kept := proto.Clone(id).(*knowingnodev1.Identity)
	size := len(plain) + proto.Size(kept)
	line := compactLine(nil, plain)
	if string(line) == string(plain) {
		line = plain // the usual case: one slice for both
	} else {
		size += len(line)
	}
	return &identityJSON{id: kept, plain: plain, line: line, size: size}, nil
}

// add puts e into the current generation under h, unless an equal identity
// is there already or the chain is full; it starts a new generation when
// the current one is at half the bounds.
func (c *identityCache) add(h uint64, e *identityJSON) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chain := c.cur[h]
	if len(chain) >= identityCacheChain {
		return
	}
	for _, o := range chain {
		if o == e || identityEqual(o.id, e.id) {
			return
		}
	}
	if c.curEntries+1 > identityCacheEntries/2 || c.curBytes+e.size > identityCacheBytes/2 {
		c.prev, c.cur = c.cur, make(map[uint64][]*identityJSON, len(c.cur))
		c.curEntries, c.curBytes = 0, 0
		chain = nil
	}
	c.cur[h] = append(chain, e)
	c.curEntries++
	c.curBytes += e.size
}

// hash hashes id's scalar fields and lists, and the sizes of its maps:
// not the maps' contents, which would cost as much again. It only narrows
// the search: identities differing in a map's contents alone share a hash,
// and identityEqual tells them apart (at most identityCacheChain of them).
func (c *identityCache) hash(id *knowingnodev1.Identity) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	str := func(s string) {
		h.WriteString(s)
		h.WriteByte(0)
	}
	var b [8]byte
	num := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	strs := func(l []string) {
		num(uint64(len(l)))
		for _, s := range l {
			str(s)
		}
	}
	str(id.PodName)
	str(id.PodNamespace)
	str(id.PodIp)
	strs(id.PodIps)
	str(id.PodUid)
	str(id.NodeName)
	str(id.NodeIp)
	str(id.ServiceAccount)
	num(uint64(len(id.Labels)))
	num(uint64(len(id.Annotations)))
	num(uint64(id.CpuLimitMillicores))
	num(uint64(id.MemoryLimitBytes))
	str(id.Hostname)
	if t := id.StartTime; t != nil {
		num(uint64(t.Seconds))
		num(uint64(t.Nanos))
	} else {
		h.WriteByte(1)
	}
	if bi := id.Build; bi != nil {
		str(bi.Version)
		str(bi.Revision)
		str(bi.GoVersion)
	} else {
		h.WriteByte(1)
	}
	num(uint64(id.Tier))
	strs(id.ServingAddresses)
	num(uint64(len(id.Sources)))
	str(id.Zone)
	str(id.Region)
	return h.Sum64()
}

// identityEqual reports whether a and b have the same JSON: every field
// equal, a nil map or list being an empty one (neither is written) and a
// nil message differing from an empty one ({} is written). Unknown fields
// are not compared: JSON does not show them.
// TestIdentityEqualSeesEveryField holds it to the descriptor: a field added
// to Identity and not compared here fails it.
func identityEqual(a, b *knowingnodev1.Identity) bool {
	return a.PodName == b.PodName && a.PodNamespace == b.PodNamespace && a.PodIp == b.PodIp &&
		slices.Equal(a.PodIps, b.PodIps) && a.PodUid == b.PodUid && a.NodeName == b.NodeName &&
		a.NodeIp == b.NodeIp && a.ServiceAccount == b.ServiceAccount &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations) &&
		a.CpuLimitMillicores == b.CpuLimitMillicores && a.MemoryLimitBytes == b.MemoryLimitBytes &&
		a.Hostname == b.Hostname && timestampEqual(a.StartTime, b.StartTime) && buildEqual(a.Build, b.Build) &&
		a.Tier == b.Tier && slices.Equal(a.ServingAddresses, b.ServingAddresses) &&
		maps.Equal(a.Sources, b.Sources) && a.Zone == b.Zone && a.Region == b.Region
}

func timestampEqual(a, b *timestamppb.Timestamp) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Seconds == b.Seconds && a.Nanos == b.Nanos
}

func buildEqual(a, b *knowingnodev1.BuildInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Version == b.Version && a.Revision == b.Revision && a.GoVersion == b.GoVersion
}
