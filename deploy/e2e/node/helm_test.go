package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	knowingnodev1 "github.com/knowingnode/knowingnode/gen/knowingnode/v1"
	"github.com/knowingnode/knowingnode/harness/apijson"
	"github.com/knowingnode/knowingnode/harness/poll"
	"github.com/knowingnode/knowingnode/harness/proc"
)

// helmNS is the namespace the release's workloads get: the overlays' own
// objects (same names) stay in knowingnode.
const helmNS = "knowingnode-helm"

// helmRelease installs the chart (deploy/helm/knowingnode) as a user does,
// with the StatefulSet topology and the EndpointSlice mode (the deployment
// topology's backends, watched through the API by frontend-endpointslices
// with its own ServiceAccount and Role), runs its `helm test`, fans out to
// every pod, upgrades a value under load (a rolling update of the backends)
// and uninstalls it, leaving nothing.
func helmRelease(t *testing.T) {
	scenario(t, "helm install, test, upgrade, uninstall", func(t *testing.T) string {
		home := filepath.Join(work, "helm-home") // helm's cache, config and data: not root's home
		bin := filepath.Join(work, "helm")
		if _, err := runCmd(repo, []string{"CGO_ENABLED=0"}, "go", "build", "-modfile=tools/helm.mod", "-o", bin, "helm.sh/helm/v3/cmd/helm"); err != nil {
			t.Fatal(err)
		}
		helm := func(args ...string) (string, time.Duration) {
			t0 := time.Now()
			out, err := proc.Run(repo, []string{"KUBECONFIG=" + kubecfg, "HELM_CACHE_HOME=" + home + "/cache",
				"HELM_CONFIG_HOME=" + home + "/config", "HELM_DATA_HOME=" + home + "/data"}, 5*time.Minute, bin, args...)
			if err != nil {
				t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
			}
			return out, time.Since(t0)
		}
		chart := filepath.Join(repo, "deploy/helm/knowingnode")
		_, installed := helm("install", "kn", chart, "--namespace", "default",
			"--set", "namespace.name="+helmNS,
			"--set", "topologies.statefulset.enabled=true",
			// The EndpointSlice mode watches the deployment topology's
			// backends; two of them, without that topology's own frontend.
			"--set", "endpointSlices.enabled=true", "--set", "endpointSlices.frontend.replicas=1",
			"--set", "endpointSlices.frontend.hpa.enabled=false", "--set", "endpointSlices.frontend.pdb.enabled=false",
			"--set", "topologies.deployment.backend.replicas=2", "--set", "topologies.deployment.backend.hpa.enabled=false",
			"--set", "topologies.deployment.frontend.enabled=false", "--set", "image.tag="+strings.TrimPrefix(imageTag, "knowingnode:"),
			"--wait", "--timeout", "3m")
		manifest, _ := helm("get", "manifest", "kn", "--namespace", "default")
		file := filepath.Join(work, "helm-manifest.yaml")
		if err := os.WriteFile(file, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		objects, err := kubectl("get", "-f", file, "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		nObjects := len(strings.Fields(objects))

		testOut, tested := helm("test", "kn", "--namespace", "default", "--timeout", "2m")
		if !strings.Contains(testOut, "Phase:          Succeeded") {
			t.Errorf("helm test did not succeed:\n%s", testOut)
		}

		ip, err := serviceIP(helmNS, "frontend-statefulset")
		if err != nil {
			t.Fatal(err)
		}
		base := "http://" + ip + ":8080"
		const sel = "component=backend,controlling=statefulset"
		first := eachMatchesAPI(t, base, helmNS, sel)
		slicesSeen := helmSlicesMatchAPI(t)

		// A value that changes the backends' pod template: the StatefulSet
		// rolls them one at a time while EACH and BALANCED load runs.
		l := startLoad(t, base, false)
		_, upgraded := helm("upgrade", "kn", chart, "--namespace", "default", "--reuse-values",
			"--set", "backend.logFormat=text", "--wait", "--timeout", "3m")
		if _, err := kubectl("-n", helmNS, "rollout", "status", "statefulset/backend-sts", "--timeout=180s"); err != nil {
			t.Fatal(err)
		}
		eachMatchesAPI(t, base, helmNS, sel) // the new pods, all of them
		time.Sleep(2 * time.Second)
		st := l.stop()
		if st.balFailed != 0 || st.eachWhole != 0 {
			t.Errorf("under the upgrade: %s", st)
		}
		text, err := kubectl("-n", helmNS, "get", "statefulset/backend-sts", "-o", "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"LOG_FORMAT\")].value}")
		if err != nil || text != "text" {
			t.Errorf("after the upgrade LOG_FORMAT is %q (%v), want text", text, err)
		}

		_, uninstalled := helm("uninstall", "kn", "--namespace", "default", "--wait", "--timeout", "3m")
		// Everything the release made, its namespace included, is gone.
		err = poll.Until(t.Context(), 2*time.Minute, time.Second, "the release's objects to be gone", func(context.Context) error {
			left, err := kubectl("get", "-f", file, "--ignore-not-found", "-o", "name")
			if err != nil {
				return err
			}
			if left = strings.TrimSpace(left); left != "" {
				return fmt.Errorf("left: %s", strings.Join(strings.Fields(left), " "))
			}
			if out, _ := kubectl("get", "namespace", helmNS, "--ignore-not-found", "-o", "name"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("namespace %s still there", helmNS)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		return fmt.Sprintf("install %.0fs (%d objects), helm test %.0fs, EACH = %d API pods, %s, upgrade under load %.0fs: %s; uninstall %.0fs, nothing left",
			installed.Seconds(), nObjects, tested.Seconds(), len(first.Results), slicesSeen, upgraded.Seconds(), st, uninstalled.Seconds())
	})
}

// helmSlicesMatchAPI waits until the release's frontend-endpointslices lists,
// through its EndpointSlice watch (backend-api), exactly the ready backend
// pods the API lists, and through DNS (backend-dns) the Service's one
// ClusterIP: the chart's ServiceAccount and Role are enough for the watch,
// in the release's namespace.
func helmSlicesMatchAPI(t *testing.T) string {
	t.Helper()
	const sel = "component=backend,controlling=deployment"
	vip, err := serviceIP(helmNS, "backend")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	var last string
	err = poll.Until(t.Context(), 90*time.Second, 500*time.Millisecond, "frontend-endpointslices to list the API's backends", func(ctx context.Context) error {
		fes, err := readyPods(helmNS, "component=frontend,controlling=endpointslices")
		if err != nil || len(fes) == 0 {
			return fmt.Errorf("no ready frontend-endpointslices pod (%v)", err)
		}
		bs, err := readyPods(helmNS, sel)
		if err != nil || len(bs) == 0 {
			return fmt.Errorf("no ready backend pod (%v)", err)
		}
		var want []string
		for _, b := range bs {
			want = append(want, b.Status.PodIP+":9090")
		}
		slices.Sort(want)
		var r knowingnodev1.ListTargetsResponse
		get, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := apijson.Get(get, fresh, "http://"+fes[0].Status.PodIP+":8080/v1/targets", &r); err != nil {
			return err
		}
		api, dns := callable(target(&r, "backend-api")), callable(target(&r, "backend-dns"))
		if !slices.Equal(api, want) || !slices.Equal(dns, []string{vip + ":9090"}) {
			return fmt.Errorf("the API lists %v behind the ClusterIP %s; the EndpointSlice watch %v, DNS %v", want, vip, api, dns)
		}
		last = fmt.Sprintf("EndpointSlice watch = %d API pods (DNS: the ClusterIP) after %.1fs", len(want), time.Since(t0).Seconds())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return last
}
