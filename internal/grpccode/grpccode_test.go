package grpccode

import (
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestName(t *testing.T) {
	tests := []struct {
		code codes.Code
		want string
	}{
		{codes.OK, "OK"},
		{codes.Canceled, "CANCELLED"},
		{codes.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{codes.Unavailable, "UNAVAILABLE"},
		{codes.ResourceExhausted, "RESOURCE_EXHAUSTED"},
		{codes.FailedPrecondition, "FAILED_PRECONDITION"},
		{codes.Unauthenticated, "UNAUTHENTICATED"},
		{codes.Code(99), "CODE(99)"},
	}
	for _, tt := range tests {
		if got := Name(tt.code); got != tt.want {
			t.Errorf("Name(%d) = %q, want %q", tt.code, got, tt.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		for _, s := range []string{Name(c), strconv.Itoa(int(c))} {
			got, err := Parse(s)
			if err != nil || got != c {
				t.Errorf("Parse(%q) = %v, %v; want %v", s, got, err, c)
			}
		}
	}
	if c, err := Parse("canceled"); err != nil || c != codes.Canceled {
		t.Errorf("Parse(Go's spelling canceled) = %v, %v", c, err)
	}
	for _, bad := range []string{"", "NOPE", "-1", "17", "CODE(99)"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}
