package identity

import (
	"errors"
	"slices"
	"strings"

	"github.com/knowingnode/knowingnode/internal/config"
)

// DefaultDeny is what the identity withholds unless told otherwise: kubectl's
// copy of the whole applied manifest, which may hold anything the manifest
// did, and every annotation whose key looks like it names a secret.
var DefaultDeny = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"*password*", "*passwd*", "*secret*", "*token*", "*key*", "*credential*",
	"*auth*", "*cert*", "*private*", "*session*", "*cookie*",
}

// AnnotationFilter decides which annotations the identity reveals: those
// matching no Deny pattern, and those matching an Allow pattern. Patterns
// are case-insensitive globs in which '*' matches any run of characters,
// '/' included.
type AnnotationFilter struct {
	Allow []string
	Deny  []string
}

// Limits of the filter's flags.
const (
	maxPatterns   = 100
	maxPatternLen = 317 // the longest annotation key: 253 prefix + '/' + 63 name
)

// Register defines --annotations-allow and --annotations-deny, the deny list
// defaulting to DefaultDeny.
func (f *AnnotationFilter) Register(s *config.Set) {
	f.Deny = slices.Clone(DefaultDeny)
	s.Var((*patterns)(&f.Allow), "annotations-allow", "ANNOTATIONS_ALLOW",
		"comma-separated annotation keys (globs, '*' any run) revealed even when a deny pattern matches them; '*' reveals every annotation")
	s.Var((*patterns)(&f.Deny), "annotations-deny", "ANNOTATIONS_DENY",
		"comma-separated annotation keys (globs) withheld from the identity; replaces the default list, which withholds kubectl's last-applied-configuration and keys that look like secrets; '' withholds nothing")
}

// Validate checks the patterns' number and length.
func (f *AnnotationFilter) Validate() error {
	var errs []error
	for flag, ps := range map[string][]string{"annotations-allow": f.Allow, "annotations-deny": f.Deny} {
		errs = append(errs, config.Check(len(ps) <= maxPatterns, flag, "%d patterns, at most %d", len(ps), maxPatterns))
		for _, p := range ps {
			errs = append(errs, config.Check(len(p) <= maxPatternLen, flag, "pattern of %d bytes, at most %d", len(p), maxPatternLen))
		}
	}
	return errors.Join(errs...)
}

// Reveals reports whether the annotation key may be shown.
func (f *AnnotationFilter) Reveals(key string) bool {
	key = strings.ToLower(key)
	match := func(p string) bool { return glob(strings.ToLower(p), key) }
	return slices.ContainsFunc(f.Allow, match) || !slices.ContainsFunc(f.Deny, match)
}

// Apply returns the annotations revealed and the keys withheld, sorted.
func (f *AnnotationFilter) Apply(m map[string]string) (revealed map[string]string, withheld []string) {
	if m == nil {
		return nil, nil
	}
	revealed = make(map[string]string, len(m))
	for k, v := range m {
		if f.Reveals(k) {
			revealed[k] = v
		} else {
			withheld = append(withheld, k)
		}
	}
	slices.Sort(withheld)
	return revealed, withheld
}

// glob matches s against a pattern where '*' is any run of characters.
// path.Match would stop '*' at the '/' every prefixed key has.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// patterns is a comma-separated list flag; setting it replaces the list.
type patterns []string

func (p *patterns) String() string { return strings.Join(*p, ",") }

func (p *patterns) Set(v string) error {
	*p = nil
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*p = append(*p, item)
		}
	}
	return nil
}
