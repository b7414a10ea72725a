package helm

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestSchemaRejects: bad values fail at `helm template`/`install` time with a
// message that names the value and what is wrong, before anything reaches a
// cluster.
func TestSchemaRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		set  string
		want []string // each must appear in the error
	}{
		{"topologies.deployment.backend.replicas=-1", []string{"/topologies/deployment/backend/replicas", "minimum"}},
		{"image.pullPolicy=Sometimes", []string{"/image/pullPolicy", "Always", "IfNotPresent", "Never"}},
		{"image.repository=", []string{"/image/repository"}},
		{"backend.fault.errorRate=2", []string{"/backend/fault/errorRate", "maximum"}},
		{"backend.fault.errorRate=1.5", []string{"/backend/fault/errorRate", "does not match pattern"}},
		{"backend.fault.errorCode=BROKEN", []string{"/backend/fault/errorCode", "UNAVAILABLE"}},
		{"backend.drainDelay=5 seconds", []string{"/backend/drainDelay", "does not match pattern"}},
		{"namespace.name=Know_Node", []string{"/namespace/name", "does not match pattern"}},
		{"topologies.deployment.frontend.service.type=LoadBalancer", []string{"/topologies/deployment/frontend/service/type", "ClusterIP", "NodePort"}},
		{"topologies.deployment.backend.service.nodePort=80", []string{"/topologies/deployment/backend/service/nodePort", "minimum"}},
		{"topologies.daemonset.hostPort=70000", []string{"/topologies/daemonset/hostPort", "maximum"}},
		{"topologies.deployment.backend.replica=3", []string{"/topologies/deployment/backend", "replica"}},
		{"topologies.deployment.frontend.targets=backend", []string{"/topologies/deployment/frontend/targets", "does not match pattern"}},
		{"topologies.deployment.backend.hpa.minReplicas=0", []string{"/topologies/deployment/backend/hpa/minReplicas", "minimum"}},
		{"topologies.deployment.backend.hpa.minReplicas=12", []string{"topologies.deployment.backend.hpa", "minReplicas 12", "maxReplicas 10"}},
		{"topologies.deployment.enabled=false", []string{"no topology is enabled"}},
		{"endpointSlices.enabled=false,endpointSlices.frontend.replicas=-1", []string{"/endpointSlices/frontend/replicas", "minimum"}},
		{"backend.trafficDistribution=Anywhere", []string{"/backend/trafficDistribution", "PreferClose"}},
		{"endpointSlices.enabled=true,topologies.deployment.enabled=false,topologies.statefulset.enabled=true", []string{"endpointSlices.enabled needs topologies.deployment.enabled"}},
		{"load.distributed.workers=0", []string{"/load/distributed/workers", "minimum"}},
		{"load.distributed.workers=1001", []string{"/load/distributed/workers", "maximum"}},
		{"load.distributed.workers=two", []string{"/load/distributed/workers", "integer"}},
		{"load.balancing=random", []string{"/load/balancing", "weighted_round_robin", "ring_hash"}},
		{"load.distributed.readyPolicy=wait", []string{"/load/distributed/readyPolicy", "abort", "partial"}},
		{"load.distributed.lostPolicy=retry", []string{"/load/distributed/lostPolicy", "continue", "abort"}},
		{"load.distributed.rate=0", []string{"/load/distributed/rate", "exclusiveMinimum"}},
		{"load.distributed.concurrency=0", []string{"/load/distributed/concurrency", "minimum"}},
		{"load.distributed.duration=2 minutes", []string{"/load/distributed/duration", "does not match pattern"}},
		{"load.distributed.readyTimeout=", []string{"/load/distributed/readyTimeout", "does not match pattern"}},
		{"load.distributed.maxP99=fast", []string{"/load/distributed/maxP99"}},
		{"load.distributed.maxErrorRate=1.5", []string{"/load/distributed/maxErrorRate", "does not match pattern"}},
		{"load.distributed.maxErrorRate=2", []string{"/load/distributed/maxErrorRate", "maximum"}},
		{"load.distributed.activeDeadlineSeconds=10", []string{"/load/distributed/activeDeadlineSeconds", "minimum"}},
		{"load.distributed.topologySpread.whenUnsatisfiable=Never", []string{"/load/distributed/topologySpread/whenUnsatisfiable", "DoNotSchedule", "ScheduleAnyway"}},
		{"load.distributed.topologySpread.maxSkew=0", []string{"/load/distributed/topologySpread/maxSkew", "minimum"}},
		{"load.distributed.resources.workers.limits.cpu=1", []string{"/load/distributed/resources", "workers"}},
		{"load.distributed.worker=3", []string{"/load/distributed", "worker"}},
	}
	for _, c := range cases {
		t.Run(c.set, func(t *testing.T) {
			t.Parallel()
			_, err := helm(t, "template", "knowingnode", chartDir, "--set", c.set)
			if err == nil {
				t.Fatalf("--set %s rendered; want it rejected", c.set)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("--set %s: error does not mention %q:\n%v", c.set, w, err)
				}
			}
		})
	}
}

// TestValuesReachManifests: the values a user sets show up where they should.
func TestValuesReachManifests(t *testing.T) {
	t.Parallel()
	out, err := helm(t, "template", "knowingnode", chartDir,
		"--set", "image.repository=registry.example/knowingnode,image.tag=v1.2.3,image.pullPolicy=Always",
		"--set", "backend.fault.latency=100ms,backend.fault.errorRate=0.25,backend.fault.errorCode=INTERNAL",
		"--set", "topologies.deployment.backend.replicas=5,topologies.deployment.backend.hpa.enabled=false",
		"--set", "commonLabels.team=platform,podAnnotations.example\\.com/owner=me",
		"--set", "topologies.deployment.frontend.targets=a=dns:///a.example:9090 b=static:///10.0.0.1:9090")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := objs["HorizontalPodAutoscaler knowingnode/backend"]; ok {
		t.Errorf("backend HPA rendered with hpa.enabled=false")
	}
	for _, id := range ids(objs) {
		if objs[id].typ == nil {
			continue
		}
		labels := objs[id].obj["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["team"] != "platform" {
			t.Errorf("%s: commonLabels.team missing: %v", id, labels)
		}
	}
	be := objs["Deployment knowingnode/backend"].obj
	fe := objs["Deployment knowingnode/frontend-deployment"].obj
	spec := func(o map[string]any) map[string]any { return o["spec"].(map[string]any) }
	if r := spec(be)["replicas"]; r != int64(5) {
		t.Errorf("backend replicas %v, want 5", r)
	}
	tpl := func(o map[string]any) map[string]any { return spec(o)["template"].(map[string]any) }
	ann := tpl(be)["metadata"].(map[string]any)["annotations"].(map[string]any)
	if ann["example.com/owner"] != "me" {
		t.Errorf("podAnnotations not on the backend pods: %v", ann)
	}
	ctr := func(o map[string]any) map[string]any {
		return spec(tpl(o))["containers"].([]any)[0].(map[string]any)
	}
	for _, o := range []map[string]any{be, fe} {
		if c := ctr(o); c["image"] != "registry.example/knowingnode:v1.2.3" || c["imagePullPolicy"] != "Always" {
			t.Errorf("image %v %v", c["image"], c["imagePullPolicy"])
		}
	}
	env := func(o map[string]any) map[string]string {
		m := map[string]string{}
		for _, e := range ctr(o)["env"].([]any) {
			e := e.(map[string]any)
			if v, ok := e["value"].(string); ok {
				m[e["name"].(string)] = v
			}
		}
		return m
	}
	be_env := env(be)
	for k, v := range map[string]string{"FAULT_LATENCY": "100ms", "FAULT_ERROR_RATE": "0.25", "FAULT_ERROR_CODE": "INTERNAL"} {
		if be_env[k] != v {
			t.Errorf("backend env %s=%q, want %q", k, be_env[k], v)
		}
	}
	if _, ok := be_env["FAULT_JITTER"]; ok {
		t.Errorf("FAULT_JITTER set although not given")
	}
	if got := env(fe)["TARGETS"]; got != "a=dns:///a.example:9090 b=static:///10.0.0.1:9090" {
		t.Errorf("frontend TARGETS %q", got)
	}
}

// TestHelmTestPod: the `helm test` hook checks every installed tier of every
// topology, with the image's check binary, and no more.
func TestHelmTestPod(t *testing.T) {
	t.Parallel()
	cases := []struct {
		values string
		want   []string
	}{
		{"testdata/deployment.yaml", []string{
			"-backend=dns:///backend.knowingnode.svc.cluster.local:9090",
			"-frontend=dns:///frontend-deployment.knowingnode.svc.cluster.local:9090",
		}},
		{"testdata/all.yaml", []string{
			"-backend=dns:///backend.knowingnode.svc.cluster.local:9090",
			"-frontend=dns:///frontend-deployment.knowingnode.svc.cluster.local:9090",
			"-backend=dns:///backend-sts.knowingnode.svc.cluster.local:9090",
			"-frontend=dns:///frontend-statefulset.knowingnode.svc.cluster.local:9090",
			"-backend=dns:///backend-ds.knowingnode-node.svc.cluster.local:9090",
			"-frontend=dns:///frontend-daemonset.knowingnode.svc.cluster.local:9090",
		}},
		{"testdata/endpointslices.yaml", []string{
			"-backend=dns:///backend.knowingnode.svc.cluster.local:9090",
			"-frontend=dns:///frontend-deployment.knowingnode.svc.cluster.local:9090",
			"-frontend=dns:///frontend-endpointslices.knowingnode.svc.cluster.local:9090",
		}},
	}
	for _, c := range cases {
		out, err := helm(t, "template", "knowingnode", chartDir, "-f", c.values, "--show-only", "templates/tests/check.yaml")
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decode(out)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := objs["Pod knowingnode/knowingnode-check"]
		if !ok {
			t.Fatalf("%s: no test pod in %v", c.values, ids(objs))
		}
		p := o.typ.(*corev1.Pod)
		if p.Annotations["helm.sh/hook"] != "test" {
			t.Errorf("%s: hook %q, want test", c.values, p.Annotations["helm.sh/hook"])
		}
		ct := p.Spec.Containers[0]
		if !slices.Equal(ct.Command, []string{"/usr/local/bin/check"}) {
			t.Errorf("%s: command %q", c.values, ct.Command)
		}
		if got := ct.Args[1:]; !slices.Equal(got, c.want) {
			t.Errorf("%s: args\n%q\nwant\n%q", c.values, got, c.want)
		}
		if p.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s", c.values, p.Spec.RestartPolicy)
		}
	}
}
