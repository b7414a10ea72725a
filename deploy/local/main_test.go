package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knowingnode/knowingnode/harness/proc"
)

// Bad flags exit 2 with one line naming the flag, before anything starts;
// a DNS address without a port once made the start-up banner panic.
func TestBadFlagsExit2(t *testing.T) {
	bin := filepath.Join(proc.Build(t, "."), "local")
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"-dns-addr", "127.0.0.1"}, "-dns-addr"},
		{[]string{"-dns-addr", ":1053"}, "-dns-addr"},
		{[]string{"-http-addr", "localhost"}, "-http-addr"},
		{[]string{"-grpc-addr", "[::1]"}, "-grpc-addr"},
		{[]string{"-backends", "0"}, "-backends"},
	} {
		cmd := exec.Command(bin, append([]string{"-bin", t.TempDir()}, c.args...)...)
		out, _ := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if code := cmd.ProcessState.ExitCode(); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "flag "+c.flag) {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line naming %s", c.args, code, out, c.flag)
		}
	}
}

func TestDigCommand(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:1053": "dig @127.0.0.1 -p 1053 +short SRV _grpc._tcp.x",
		"[::1]:53":       "dig @::1 -p 53 +short SRV _grpc._tcp.x",
	} {
		if got := digCommand(addr, "_grpc._tcp.x"); got != want {
			t.Errorf("digCommand(%q) = %q, want %q", addr, got, want)
		}
	}
}
