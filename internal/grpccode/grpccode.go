// Package grpccode names gRPC status codes the way the gRPC spec and JSON
// clients spell them (UNAVAILABLE, DEADLINE_EXCEEDED), and parses them back.
package grpccode

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
)

const maxCode = codes.Unauthenticated

var names = func() (n [maxCode + 1]string) {
	for c := codes.OK; c <= maxCode; c++ {
		var b strings.Builder
		for i, r := range c.String() { // "DeadlineExceeded"
			if i > 0 && unicode.IsUpper(r) && c != codes.OK {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
		n[c] = b.String()
	}
	// Go spells it Canceled; the spec, google.rpc.Code and every other
	// language spell it CANCELLED.
	n[codes.Canceled] = "CANCELLED"
	return n
}()

// Name returns the canonical name of c, e.g. "DEADLINE_EXCEEDED".
func Name(c codes.Code) string {
	if c <= maxCode {
		return names[c]
	}
	return "CODE(" + strconv.Itoa(int(c)) + ")"
}

// Parse reads a code by canonical name (any case) or number 0..16.
func Parse(s string) (codes.Code, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if u == "CANCELED" { // Go's spelling
		return codes.Canceled, nil
	}
	for c, n := range names {
		if n == u {
			return codes.Code(c), nil
		}
	}
	if n, err := strconv.Atoi(u); err == nil && n >= 0 && n <= int(maxCode) {
		return codes.Code(n), nil
	}
	return 0, fmt.Errorf("%q is not a gRPC code: want a name such as UNAVAILABLE or a number 0..%d", s, maxCode)
}
