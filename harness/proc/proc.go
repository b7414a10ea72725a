// Package proc is the one way the tests build and run programs: the
// project's binaries (a clean environment, ports chosen by the binary itself
// and read back from its "serving" log line, SIGTERM to stop, SIGKILL when it
// hangs) and the tools the e2e suites drive (kubectl, the cluster scripts, the
// control-plane daemons). Every child dies with the test process.
package proc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hangGuard bounds every wait, so a broken binary fails the test instead of
// hanging it.
const hangGuard = 30 * time.Second

// Binaries are the two tiers, by import path: what Build builds when given
// no package.
var Binaries = []string{
	"github.com/knowingnode/knowingnode/backend",
	"github.com/knowingnode/knowingnode/frontend",
}

// ImageBinaries are what the image holds: the tiers, the helm test's check
// and the load tool.
var ImageBinaries = append(slices.Clone(Binaries),
	"github.com/knowingnode/knowingnode/check",
	"github.com/knowingnode/knowingnode/loadtest/cmd/load",
)

// BuildTo builds pkgs (import paths or directories, default Binaries) as
// static binaries into dir, named after their package directories, the way
// the image holds them. It works from any module of the workspace.
func BuildTo(dir string, pkgs ...string) error {
	if len(pkgs) == 0 {
		pkgs = Binaries
	}
	return goBuild(dir, pkgs...)
}

// Build returns a directory of the test's holding pkgs' binaries (default
// Binaries), named after their package directories, as BuildTo makes them.
// Each binary is linked once per content, not once per test: it comes from
// a cache shared by every test process (cache.go), keyed by what it is built
// from, and the directory holds links to it.
func Build(tb testing.TB, pkgs ...string) string {
	tb.Helper()
	if len(pkgs) == 0 {
		pkgs = Binaries
	}
	bins, err := cached(pkgs)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	for name, p := range bins {
		if err := os.Symlink(p, filepath.Join(dir, name)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// Options say how Launch runs a program.
type Options struct {
	// Dir is the working directory (default: the caller's).
	Dir string
	// Env is added to the environment. Unless Inherit is set, the
	// environment is only PATH and Env, so the host's variables cannot fill
	// a binary's flags or Downward API fields.
	Env     []string
	Inherit bool
	// LogFile, when set, receives a copy of everything the process writes.
	LogFile string
	// Echo, when set, is called with each line the process writes.
	Echo func(line string)
}

// Process is a running program.
type Process struct {
	Name   string
	Cmd    *exec.Cmd
	Addrs  map[string]string // "grpc", "http", "admin" -> host:port, from its serving line
	Exited chan struct{}     // closed once the process has exited

	out     *tailBuffer
	serving chan []string
	err     error // Wait's error, set before Exited is closed
}

// Launch starts bin in its own process group, killed if the test process
// dies first.
func Launch(name, bin string, opts Options, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = opts.Dir
	if opts.Inherit {
		cmd.Env = append(os.Environ(), opts.Env...)
	} else {
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, opts.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Name: name, Cmd: cmd, Addrs: map[string]string{}, Exited: make(chan struct{}),
		out: &tailBuffer{max: 1 << 20}, serving: make(chan []string, 1)}
	var sinks []io.Writer
	var logFile *os.File
	if opts.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.LogFile), 0o755); err != nil {
			return nil, err
		}
		f, err := os.Create(opts.LogFile)
		if err != nil {
			return nil, err
		}
		logFile = f
		sinks = append(sinks, f)
	}
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(append(sinks, pw)...)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.out.Write(append(sc.Bytes(), '\n'))
			var line struct {
				Msg   string   `json:"msg"`
				Addrs []string `json:"addrs"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				select {
				case p.serving <- line.Addrs:
				default:
				}
			}
			if opts.Echo != nil {
				opts.Echo(sc.Text())
			}
		}
		io.Copy(io.Discard, pr) // a line too long: keep the child unblocked
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-scanned
		if logFile != nil {
			logFile.Close()
		}
		p.err = err
		close(p.Exited)
	}()
	return p, nil
}

// WaitServing waits for the process's "serving" log line (JSON logs) and
// records the addresses it names.
func (p *Process) WaitServing(limit time.Duration) error {
	select {
	case addrs := <-p.serving:
		for _, a := range addrs {
			k, v, _ := strings.Cut(a, "=")
			p.Addrs[k] = v
		}
		return nil
	case <-p.Exited:
		return fmt.Errorf("%s exited before serving: %v\n%s", p.Name, p.err, p.Tail(20))
	case <-time.After(limit):
		return fmt.Errorf("%s did not log that it serves within %v\n%s", p.Name, limit, p.Tail(20))
	}
}

// Output is what the process has written so far (its last MiB).
func (p *Process) Output() string { return p.out.String() }

// Tail is the last n lines of the output, for error messages.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Err reports, once the process has exited, how it ended; nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.Exited:
		if p.err == nil {
			return fmt.Errorf("%s exited", p.Name)
		}
		return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(20))
	default:
		return nil
	}
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Terminate sends SIGTERM to the process group, then SIGKILL after grace,
// and waits for the exit.
func (p *Process) Terminate(grace time.Duration) error {
	select {
	case <-p.Exited:
		return nil
	default:
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.Exited:
		return nil
	case <-time.After(grace):
	}
	return p.Kill()
}

// Kill ends the process group at once, as a crash would, and waits for it.
func (p *Process) Kill() error {
	select {
	case <-p.Exited:
		return nil
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.Exited:
		return nil
	case <-time.After(hangGuard):
		return fmt.Errorf("%s (pid %d) did not die after SIGKILL", p.Name, p.Cmd.Process.Pid)
	}
}

// Start runs one of the project's binaries for a test, with only PATH,
// LOG_FORMAT=json and env in its environment, and waits for its serving
// line. It is killed at the end of the test if still running, and its output
// is logged when the test failed.
func Start(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	name := filepath.Base(bin)
	opts := Options{Env: append([]string{"LOG_FORMAT=json"}, env...)}
	if testing.Verbose() {
		opts.Echo = func(line string) { tb.Logf("%s: %s", name, line) }
	}
	p, err := Launch(name, bin, opts, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Kill(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() && !testing.Verbose() {
			tb.Logf("--- %s output:\n%s", name, p.Tail(200))
		}
	})
	if err := p.WaitServing(hangGuard); err != nil {
		tb.Fatal(err)
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
		tb.Fatalf("%s did not exit", p.Name)
		return -1
	}
}

// Stop sends SIGTERM, as the kubelet does, and returns the exit code.
func (p *Process) Stop(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.Exited:
	default:
		p.Signal(syscall.SIGTERM)
	}
	return p.Wait(tb)
}

// Run runs a command to its end (killed with the test process, and at
// timeout) with env added to the caller's environment, and returns its
// stdout; the error carries both outputs.
func Run(dir string, env []string, timeout time.Duration, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = fmt.Errorf("killed after %v", timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
