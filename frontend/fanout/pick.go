package fanout

import knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"

// Pick returns the client of the current endpoint n modulo their number,
// each over its endpoint's own connection; nil when there is none. The load
// service rotates over them.
func (p *Pool) Pick(n uint64) knowingnodev1.IdentityServiceClient {
	bs := p.Backends()
	if len(bs) == 0 {
		return nil
	}
	return bs[n%uint64(len(bs))].client
}
