package loadreport

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// mountinfo lines as a hybrid v1 host (this machine) and a v2 host show them.
const (
	v1Mounts = "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n" +
		"33 25 0:29 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n" +
		"34 25 0:30 / /sys/fs/cgroup/cpuacct rw,nosuid - cgroup cgroup rw,cpuacct\n"
	v1CombinedInContainer = "40 35 0:33 /kubepods/pod1/c1 /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
	v2Mounts              = "25 22 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

func TestCPUSource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fs      fstest.MapFS
		cgroup  bool    // a cgroup source, else the process
		cores   float64 // of a cgroup source
		usage   time.Duration
		version string
	}{
		{"v1 hybrid, quota", fstest.MapFS{
			"proc/self/cgroup":                        file("2:cpuacct:/job\n1:cpu:/job\n0::/\n"),
			"proc/self/mountinfo":                     file(v1Mounts),
			"sys/fs/cgroup/cpu/job/cpu.cfs_quota_us":  file("50000\n"),
			"sys/fs/cgroup/cpu/job/cpu.cfs_period_us": file("100000\n"),
			"sys/fs/cgroup/cpuacct/job/cpuacct.usage": file("1500000000\n"),
		}, true, 0.5, 1500 * time.Millisecond, "v1"},
		{"v1 in a container, the mount rooted at its cgroup", fstest.MapFS{
			"proc/self/cgroup":                            file("3:cpu,cpuacct:/kubepods/pod1/c1\n"),
			"proc/self/mountinfo":                         file(v1CombinedInContainer),
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  file("250000"),
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": file("100000"),
			"sys/fs/cgroup/cpu,cpuacct/cpuacct.usage":     file("42"),
		}, true, 2.5, 42, "v1"},
		{"v1 without a quota: the process", fstest.MapFS{
			"proc/self/cgroup":                    file("2:cpuacct:/\n1:cpu:/\n0::/\n"),
			"proc/self/mountinfo":                 file(v1Mounts),
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us":  file("-1\n"),
			"sys/fs/cgroup/cpu/cpu.cfs_period_us": file("100000\n"),
		}, false, 0, 0, ""},
		{"v2, quota", fstest.MapFS{
			"proc/self/cgroup":    file("0::/kubepods.slice/pod.slice/c.scope\n"),
			"proc/self/mountinfo": file(v2Mounts),
			"sys/fs/cgroup/kubepods.slice/pod.slice/c.scope/cpu.max":  file("200000 100000\n"),
			"sys/fs/cgroup/kubepods.slice/pod.slice/c.scope/cpu.stat": file("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"),
		}, true, 2, 2500 * time.Microsecond, "v2"},
		{"v2 without a quota: the process", fstest.MapFS{
			"proc/self/cgroup":      file("0::/\n"),
			"proc/self/mountinfo":   file(v2Mounts),
			"sys/fs/cgroup/cpu.max": file("max 100000\n"),
		}, false, 0, 0, ""},
		{"no cgroups: the process", fstest.MapFS{}, false, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newCPUSource(tc.fs)
			cg, ok := src.(*cgroupSource)
			if ok != tc.cgroup {
				t.Fatalf("source %s; want a cgroup: %v", src, tc.cgroup)
			}
			if !ok {
				if src.cores() < 1 || !strings.Contains(src.String(), "process") {
					t.Errorf("process source %s: %g cores", src, src.cores())
				}
				if u, err := src.usage(); err != nil || u <= 0 {
					t.Errorf("process usage %v, %v; want some", u, err)
				}
				return
			}
			if cg.cores() != tc.cores || cg.version != tc.version {
				t.Errorf("%s: cores %g version %s; want %g %s", cg, cg.cores(), cg.version, tc.cores, tc.version)
			}
			if u, err := cg.usage(); err != nil || u != tc.usage {
				t.Errorf("usage %v, %v; want %v", u, err, tc.usage)
			}
		})
	}
}

// TestCPUSourceHere: this machine's source reads, whichever it is.
func TestCPUSourceHere(t *testing.T) {
	src := newCPUSource(rootFS())
	if _, err := src.usage(); err != nil || src.cores() <= 0 {
		t.Fatalf("%s: %v, %g cores", src, err, src.cores())
	}
	t.Logf("CPU utilization here: %s", src)
}
