package loadreport

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSource reads a CPU usage counter and the cores it is measured against.
type cpuSource interface {
	// usage is the CPU time used so far.
	usage() (time.Duration, error)
	// cores is what full utilization means: the cgroup's quota, or the
	// process's CPUs when there is no quota.
	cores() float64
	// String names the source for the log and the README ("cgroup v1 ...").
	String() string
}

// cgroupSource is a cgroup's CPU usage counter against its quota.
type cgroupSource struct {
	fsys    fs.FS
	file    string  // usage counter, relative to fsys
	v2      bool    // cpu.stat usage_usec (v2) or cpuacct.usage in ns (v1)
	limit   float64 // cores of the quota
	version string
}

func (c *cgroupSource) usage() (time.Duration, error) {
	b, err := fs.ReadFile(c.fsys, c.file)
	if err != nil {
		return 0, err
	}
	if !c.v2 {
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", c.file, err)
		}
		return time.Duration(ns), nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", c.file, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec", c.file)
}

func (c *cgroupSource) cores() float64 { return c.limit }

func (c *cgroupSource) String() string {
	return fmt.Sprintf("cgroup %s /%s against its quota of %g cores", c.version, c.file, c.limit)
}

// processSource is the process's own CPU time against the CPUs it may use.
type processSource struct{ ncpu int }

func (p processSource) usage() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

func (p processSource) cores() float64 { return float64(p.ncpu) }

func (p processSource) String() string {
	return fmt.Sprintf("the process against its %d CPUs (no cgroup CPU quota)", p.ncpu)
}

// newCPUSource finds the CPU quota of the cgroup this process is in, v1 or
// v2 (a v1 cpu controller wins on a hybrid host, where the unified hierarchy
// holds no controller), and measures the cgroup against it; without a
// quota, or without cgroups, it measures the process against its CPUs.
// root is "/" in production; tests pass a fake tree.
func newCPUSource(root fs.FS) cpuSource {
	if src, err := cgroupCPU(root); err == nil && src != nil {
		return src
	}
	return processSource{ncpu: runtime.NumCPU()}
}

// mount is a cgroup filesystem mounted at dir, showing the hierarchy from
// root down.
type mount struct{ root, dir string }

// cgroupCPU returns nil, nil when the cgroup has no CPU quota.
func cgroupCPU(root fs.FS) (cpuSource, error) {
	groups, err := readLines(root, "proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	v1 := map[string]string{} // controller -> path
	v2, hasV2 := "", false
	for _, l := range groups {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2, hasV2 = parts[2], true
			continue
		}
		for c := range strings.SplitSeq(parts[1], ",") {
			v1[c] = parts[2]
		}
	}
	mounts, err := cgroupMounts(root)
	if err != nil {
		return nil, err
	}
	if p, ok := v1["cpu"]; ok {
		cpuDir, ok1 := mounts["cpu"].resolve(p)
		acctDir, ok2 := mounts["cpuacct"].resolve(v1["cpuacct"])
		if !ok1 || !ok2 {
			return nil, errors.New("cgroup v1 cpu or cpuacct not mounted")
		}
		quota, err1 := readInt(root, path.Join(cpuDir, "cpu.cfs_quota_us"))
		period, err2 := readInt(root, path.Join(cpuDir, "cpu.cfs_period_us"))
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if quota <= 0 || period <= 0 {
			return nil, nil
		}
		return &cgroupSource{fsys: root, file: path.Join(acctDir, "cpuacct.usage"), limit: float64(quota) / float64(period), version: "v1"}, nil
	}
	if !hasV2 {
		return nil, errors.New("no cgroup")
	}
	dir, ok := mounts[""].resolve(v2)
	if !ok {
		return nil, errors.New("cgroup v2 not mounted")
	}
	lines, err := readLines(root, path.Join(dir, "cpu.max"))
	if err != nil || len(lines) == 0 {
		return nil, nil // the root cgroup has no cpu.max: no quota
	}
	f := strings.Fields(lines[0])
	if len(f) != 2 || f[0] == "max" {
		return nil, nil
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || quota <= 0 || period <= 0 {
		return nil, fmt.Errorf("%s: cannot parse %q", path.Join(dir, "cpu.max"), lines[0])
	}
	return &cgroupSource{fsys: root, file: path.Join(dir, "cpu.stat"), v2: true, limit: quota / period, version: "v2"}, nil
}

// cgroupMounts reads mountinfo: v1 mounts by controller, the v2 mount as "".
func cgroupMounts(root fs.FS) (map[string]mount, error) {
	lines, err := readLines(root, "proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	out := map[string]mount{}
	for _, l := range lines {
		// 36 35 0:30 /root /sys/fs/cgroup/cpu rw,... shared:1 - cgroup cgroup rw,cpu
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		m := mount{root: f[3], dir: strings.TrimPrefix(f[4], "/")}
		switch g[0] {
		case "cgroup2":
			out[""] = m
		case "cgroup":
			for o := range strings.SplitSeq(g[2], ",") {
				if o == "cpu" || o == "cpuacct" {
					out[o] = m
				}
			}
		}
	}
	return out, nil
}

// resolve maps a cgroup path of /proc/self/cgroup to a directory under the
// mount (relative to the fs root). Inside a container the mount's root is
// the container's own cgroup, which /proc/self/cgroup may show in full.
func (m mount) resolve(p string) (string, bool) {
	if m.dir == "" {
		return "", false
	}
	rel := p
	if m.root != "/" {
		if r, ok := strings.CutPrefix(p, m.root); ok {
			rel = r
		} else {
			rel = "/"
		}
	}
	return path.Join(m.dir, rel), true
}

func readLines(root fs.FS, name string) ([]string, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

func readInt(root fs.FS, name string) (int64, error) {
	b, err := fs.ReadFile(root, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// rootFS is the machine's root, for newCPUSource.
func rootFS() fs.FS { return os.DirFS("/") }
