package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed facts; deploy/Dockerfile builds the same ones.
const (
	BinDir     = "/usr/local/bin"
	Entrypoint = BinDir + "/backend"
	// User is distroless's "nonroot": a numeric UID, so that the kubelet can
	// verify runAsNonRoot without an /etc/passwd lookup.
	User = "65532:65532"
)

// Spec is what goes into the image.
type Spec struct {
	// Binaries maps a file name under BinDir to the local static binary.
	Binaries map[string]string
	OS, Arch string
	// Labels become the config's labels (OCI annotations keys).
	Labels map[string]string
	// Created is the image's timestamp, and every file's: a fixed value
	// (SOURCE_DATE_EPOCH) makes the build reproducible.
	Created time.Time
}

// Build assembles the image from scratch: no base image, one layer holding
// the binaries and the few files a non-root static program needs.
func Build(s Spec) (v1.Image, error) {
	if _, ok := s.Binaries[path.Base(Entrypoint)]; !ok {
		return nil, fmt.Errorf("image: the entrypoint binary %q is not among the binaries", path.Base(Entrypoint))
	}
	layerTar, err := rootfs(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}

	cfg := &v1.ConfigFile{
		Architecture: s.Arch,
		OS:           s.OS,
		Created:      v1.Time{Time: s.Created},
		Config: v1.Config{
			Entrypoint: []string{Entrypoint},
			User:       User,
			WorkingDir: "/",
			Env:        []string{"PATH=" + BinDir},
			Labels:     s.Labels,
			ExposedPorts: map[string]struct{}{
				"8080/tcp": {}, // frontend HTTP
				"9090/tcp": {}, // gRPC (both tiers)
				"9091/tcp": {}, // backend admin HTTP
			},
		},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: s.Created},
			CreatedBy: "deploy/image: static backend and frontend binaries",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("image: append layer: %w", err)
	}
	return img, nil
}

// rootfs writes the single layer: the binaries (root-owned, 0755: the
// non-root user can run but not replace them), a world-writable /tmp, and
// passwd/group entries so tools show "nonroot" instead of a bare number.
func rootfs(s Spec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: s.Created, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: s.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"etc", "tmp", "usr", "usr/local", "usr/local/bin"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := dir(d, mode); err != nil {
			return nil, fmt.Errorf("image: rootfs %s: %w", d, err)
		}
	}
	if err := file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")); err != nil {
		return nil, fmt.Errorf("image: rootfs /etc/passwd: %w", err)
	}
	if err := file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")); err != nil {
		return nil, fmt.Errorf("image: rootfs /etc/group: %w", err)
	}
	names := make([]string, 0, len(s.Binaries))
	for n := range s.Binaries {
		names = append(names, n)
	}
	sort.Strings(names) // a stable order: the same inputs give the same digest
	for _, n := range names {
		body, err := os.ReadFile(s.Binaries[n])
		if err != nil {
			return nil, fmt.Errorf("image: binary %s: %w", n, err)
		}
		if err := file(path.Join(BinDir[1:], n), 0o755, body); err != nil {
			return nil, fmt.Errorf("image: rootfs %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: rootfs: %w", err)
	}
	return buf.Bytes(), nil
}
