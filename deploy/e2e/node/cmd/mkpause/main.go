// Command mkpause writes the sandbox image tarball for cluster/up.sh:
//
//	CGO_ENABLED=0 go build -o /tmp/pause ./pause
//	go run ./cmd/mkpause -bin /tmp/pause -o /tmp/pause.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/knowingnode/knowingnode/deploy/e2e/node/internal/pauseimage"
)

func main() {
	bin := flag.String("bin", "pause", "static pause binary")
	tag := flag.String("tag", "knowingnode.local/pause:e2e", "image tag")
	out := flag.String("o", "pause.tar", "docker-archive tarball to write")
	flag.Parse()
	if err := pauseimage.Write(*bin, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkpause:", err)
		os.Exit(1)
	}
}
