// Command image builds the knowingnode container image without Docker: from
// scratch, one layer with the four static binaries (backend, frontend,
// check, load), the entrypoint the backend, running as the non-root user 65532. It writes a
// docker-archive tarball with a tag (`ctr -n k8s.io images import` and
// `docker load` take it) and, optionally, an OCI image layout directory.
//
//	CGO_ENABLED=0 go build -o bin/ ./backend ./frontend ./check ./loadtest/cmd/load
//	cd deploy/image && go run . -bin ../../bin -o ../../bin/knowingnode.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	var (
		bin      = flag.String("bin", "bin", "directory holding the static backend, frontend, check and load binaries")
		tag      = flag.String("tag", "knowingnode:dev", "image reference recorded in the tarball (RepoTags)")
		out      = flag.String("o", "knowingnode.tar", "docker-archive tarball to write; empty skips it")
		ociDir   = flag.String("oci", "", "also write an OCI image layout to this directory")
		arch     = flag.String("arch", runtime.GOARCH, "image architecture (must match the binaries)")
		version  = flag.String("version", "dev", "org.opencontainers.image.version label")
		revision = flag.String("revision", "", "org.opencontainers.image.revision label")
	)
	flag.Parse()
	digest, err := run(*bin, *tag, *out, *ociDir, *arch, *version, *revision)
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", *tag, digest)
}

// run builds the image and writes it; it returns the image's manifest digest.
func run(bin, tag, out, ociDir, arch, version, revision string) (v1.Hash, error) {
	ref, err := name.NewTag(tag)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("tag %q: %w", tag, err)
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := Build(Spec{
		Binaries: map[string]string{
			"backend":  filepath.Join(bin, "backend"),
			"frontend": filepath.Join(bin, "frontend"),
			// The chart's `helm test` pod runs it (deploy/helm).
			"check": filepath.Join(bin, "check"),
			// The load component's Job runs it (deploy/components/loadtest).
			"load": filepath.Join(bin, "load"),
		},
		OS:      "linux",
		Arch:    arch,
		Labels:  Labels(version, revision),
		Created: created,
	})
	if err != nil {
		return v1.Hash{}, err
	}
	if out != "" {
		if err := tarball.WriteToFile(out, ref, img); err != nil {
			return v1.Hash{}, fmt.Errorf("write %s: %w", out, err)
		}
	}
	if ociDir != "" {
		p, err := layout.Write(ociDir, empty.Index)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", ociDir, err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": ref.TagStr(),
		})); err != nil {
			return v1.Hash{}, fmt.Errorf("OCI layout %s: %w", ociDir, err)
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest: %w", err)
	}
	return digest, nil
}

// Labels are the OCI annotation keys the image carries.
func Labels(version, revision string) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "knowingnode",
		"org.opencontainers.image.description": "gRPC backend that reports its Kubernetes pod identity, and a frontend that discovers and fans out to every backend",
		"org.opencontainers.image.source":      "https://github.com/knowingnode/knowingnode",
		"org.opencontainers.image.version":     version,
	}
	if revision != "" {
		l["org.opencontainers.image.revision"] = revision
	}
	return l
}

// sourceDateEpoch honours SOURCE_DATE_EPOCH for reproducible builds; without
// it the image is dated at the Unix epoch, which is just as reproducible.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", v, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
