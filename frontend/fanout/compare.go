package fanout

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/internal/discovery"
)

// partners returns the targets that name the same Service as name through
// the other discovery: kubernetes:/// against DNS, SRV or StatefulSet.
func (s *Service) partners(name string) []string {
	sp := s.targets[name].target.Spec()
	svc, ns, ok := sp.Service()
	if !ok {
		return nil
	}
	var out []string
	for _, n := range s.names {
		o := s.targets[n].target.Spec()
		if n == name || (o.QType == discovery.Kubernetes) == (sp.QType == discovery.Kubernetes) {
			continue
		}
		if osvc, ons, ok := o.Service(); ok && osvc == svc && ons == ns {
			out = append(out, n)
		}
	}
	return out
}

// compared returns the message of a target's state st with its comparisons
// against its partners, and a key that changes whenever the message may: the
// versions of the target and its partners. The cached message is shared,
// so a target with partners gets a copy.
func (s *Service) compared(name string, st discovery.State) (*knowingnodev1.TargetState, string) {
	e := s.targets[name]
	ts := e.stateOf(st)
	partners := s.partners(name)
	key := fmt.Sprint(st.Version)
	if len(partners) == 0 {
		return ts, key
	}
	ts = proto.CloneOf(ts)
	api := st.Spec.QType == discovery.Kubernetes
	for _, p := range partners {
		other := s.targets[p].target.State()
		key += fmt.Sprintf("/%d", other.Version)
		dnsEps, apiEps := st.Endpoints, other.Endpoints
		if api {
			dnsEps, apiEps = other.Endpoints, st.Endpoints
		}
		c := discovery.Compare(dnsEps, apiEps)
		ts.Compare = append(ts.Compare, &knowingnodev1.TargetComparison{
			Other:   p,
			Summary: c.String(),
			OnlyDns: c.OnlyDNS,
			OnlyApi: c.OnlyAPI,
			Agree:   c.Agree,
		})
	}
	return ts, key
}

// related returns names and every partner of theirs, each once, in
// configuration order: the targets whose changes a watch of names sees.
func (s *Service) related(names []string) []string {
	var out []string
	for _, n := range s.names {
		if slices.Contains(names, n) || slices.ContainsFunc(names, func(w string) bool { return slices.Contains(s.partners(w), n) }) {
			out = append(out, n)
		}
	}
	return out
}
