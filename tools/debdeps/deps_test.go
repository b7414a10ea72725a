package debdeps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Fakes of the two apt queries the script asks, reading the test's recorded
// archive (lines "pkg version...", first version the candidate) and installed
// set (lines "pkg version"). The real apt-get runs in every make test; here the
// thing under test is the decision.
const fakeDpkgQuery = `#!/bin/sh
pkg=$(eval echo \${$#})
while read -r p v; do
  [ "$p" = "$pkg" ] && { printf 'install ok installed %s' "$v"; exit 0; }
done < "$FAKE_INSTALLED"
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1
`

const fakeAptCache = `#!/bin/sh
cmd=$1 pkg=$2
while read -r p vs; do
  [ "$p" = "$pkg" ] || continue
  set -- $vs
  case $cmd in
    madison) for v in "$@"; do echo "   $p | $v | http://deb.debian.org/debian bookworm/main amd64 Packages"; done ;;
    policy) echo "$p:"; echo "  Installed: (none)"; echo "  Candidate: $1"; echo "  Version table:"
            for v in "$@"; do echo "     $v 500"; done ;;
  esac
  exit 0
done < "$FAKE_ARCHIVE"
[ "$cmd" = policy ] || echo "N: Unable to locate package $pkg" >&2
exit 0
`

func TestResolvePins(t *testing.T) {
	script, err := filepath.Abs("../install-debian-packages.sh")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		pins      string
		archive   string
		installed string
		wantOK    bool
		wantApt   string   // the apt-get install line, "" when none runs
		wantSaid  []string // lines the script must print on stderr
	}{{
		name:    "pin present",
		pins:    "chromium=156.0.8078.108-1~deb12u1\n",
		archive: "chromium 156.0.8078.114-1~deb12u1 156.0.8078.108-1~deb12u1\n",
		wantOK:  true,
		wantApt: "apt-get install -y -qq --no-install-recommends chromium=156.0.8078.108-1~deb12u1",
	}, {
		name:    "pin replaced by a newer version",
		pins:    "chromium=156.0.8078.108-1~deb12u1\nwrk=4.1.0-3+b2\n",
		archive: "chromium 156.0.8078.114-1~deb12u1 147.0.7727.137-1~deb12u1\nwrk 4.1.0-3+b2\n",
		wantOK:  true,
		wantApt: "apt-get install -y -qq --no-install-recommends chromium=156.0.8078.114-1~deb12u1 wrk=4.1.0-3+b2",
		wantSaid: []string{
			"deps: chromium pinned 156.0.8078.108-1~deb12u1 is no longer in the archive; installing its candidate 156.0.8078.114-1~deb12u1 instead",
		},
	}, {
		name:      "installed at another version",
		pins:      "openssl=3.0.22-1~deb12u2\n",
		archive:   "openssl 3.0.22-1~deb12u2\n",
		installed: "openssl 3.0.19-1~deb12u2\n",
		wantOK:    true,
		wantSaid:  []string{"deps: openssl 3.0.19-1~deb12u2 is installed (pinned: 3.0.22-1~deb12u2); keeping it"},
	}, {
		name:      "installed at the pin",
		pins:      "wrk=4.1.0-3+b2\n",
		installed: "wrk 4.1.0-3+b2\n",
		wantOK:    true,
	}, {
		name:     "missing from the archive entirely",
		pins:     "chromium=156.0.8078.108-1~deb12u1\nno-such-package=1.0\n",
		archive:  "chromium 156.0.8078.108-1~deb12u1\n",
		wantOK:   false,
		wantSaid: []string{"deps: not in the archive at any version (after apt-get update): no-such-package"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			write(t, filepath.Join(bin, "dpkg-query"), fakeDpkgQuery, 0o755)
			write(t, filepath.Join(bin, "apt-cache"), fakeAptCache, 0o755)
			// apt-get must never run in a dry run: a fake that fails says so.
			write(t, filepath.Join(bin, "apt-get"), "#!/bin/sh\necho 'apt-get ran' >&2\nexit 99\n", 0o755)
			write(t, filepath.Join(dir, "pins.txt"), "# comment\n"+tt.pins, 0o644)
			write(t, filepath.Join(dir, "archive"), tt.archive, 0o644)
			write(t, filepath.Join(dir, "installed"), tt.installed, 0o644)

			cmd := exec.Command("bash", script, filepath.Join(dir, "pins.txt"))
			cmd.Env = append(os.Environ(),
				"PATH="+bin+":"+os.Getenv("PATH"),
				"DEPS_DRY_RUN=1",
				"FAKE_ARCHIVE="+filepath.Join(dir, "archive"),
				"FAKE_INSTALLED="+filepath.Join(dir, "installed"))
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ok := err == nil; ok != tt.wantOK {
				t.Fatalf("exit ok = %v (%v), want %v\nstdout: %s\nstderr: %s", ok, err, tt.wantOK, stdout.String(), stderr.String())
			}
			if got := strings.TrimSpace(stdout.String()); got != tt.wantApt {
				t.Errorf("apt line:\n got %q\nwant %q\nstderr: %s", got, tt.wantApt, stderr.String())
			}
			for _, line := range tt.wantSaid {
				if !strings.Contains(stderr.String(), line) {
					t.Errorf("stderr lacks %q:\n%s", line, stderr.String())
				}
			}
		})
	}
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}
