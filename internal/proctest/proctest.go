// Package proctest runs the project's binaries in tests as a user would: a
// clean environment, ports chosen by the kernel, and the addresses read back
// from the binary's own "serving" log line.
package proctest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hangGuard bounds every wait, so a broken binary fails the test instead of
// hanging it.
const hangGuard = 30 * time.Second

// Process is a running binary.
type Process struct {
	Cmd    *exec.Cmd
	Addrs  map[string]string // "grpc", "http", "admin" -> host:port, as logged
	Exited chan struct{}     // closed once the process has exited
}

// Build compiles the packages (e.g. "../backend", ".") into a temporary
// directory and returns it; binaries are named after their package dirs.
func Build(tb testing.TB, pkgs ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	out, err := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
	return dir
}

// Start runs bin with only PATH, LOG_FORMAT=json and env in its environment
// (so the host's variables cannot fill Downward API fields) and waits for
// its "serving" log line. The process is killed at the end of the test if
// still running.
func Start(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	name := filepath.Base(bin)
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LOG_FORMAT=json"}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &Process{Cmd: cmd, Addrs: map[string]string{}, Exited: make(chan struct{})}
	serving := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg   string   `json:"msg"`
				Addrs []string `json:"addrs"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				serving <- line.Addrs
			}
			if testing.Verbose() {
				tb.Logf("%s: %s", name, sc.Text())
			}
		}
		cmd.Wait()
		close(p.Exited)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			cmd.Process.Kill()
			<-p.Exited
		}
	})
	select {
	case addrs := <-serving:
		for _, a := range addrs {
			k, v, _ := strings.Cut(a, "=")
			p.Addrs[k] = v
		}
	case <-p.Exited:
		tb.Fatalf("%s exited before serving: %v", name, cmd.ProcessState)
	case <-time.After(hangGuard):
		tb.Fatalf("%s did not log that it serves", name)
	}
	return p
}

// Wait returns the exit code once the process has exited.
func (p *Process) Wait(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.Exited:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(hangGuard):
		tb.Fatalf("%s did not exit", p.Cmd.Path)
		return -1
	}
}

// Stop sends SIGTERM, as the kubelet does, and returns the exit code.
func (p *Process) Stop(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.Exited:
	default:
		p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.Wait(tb)
}
