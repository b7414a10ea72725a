// Package debdeps tests how tools/install-debian-packages.sh (make deps)
// resolves its Debian pins against what the archive serves on the day: the
// pin when it is there, the archive's candidate when the pin is gone, a kept
// installed version, and a clear failure for a package the archive lacks.
package debdeps
