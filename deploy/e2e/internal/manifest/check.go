package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/knowingnode/knowingnode/internal/discovery"
)

// Options tune Check.
type Options struct {
	// Exempt lists Pod Security violations accepted at a namespace's WARN
	// level for one workload, keyed by "Kind namespace/name", valued by the
	// check's reason as the pod-security-admission library words it (e.g.
	// "hostPort"). Violations of a namespace's ENFORCE level are never
	// accepted: the API server would refuse those pods.
	Exempt map[string][]string
}

// The Downward API env every pod must carry, by fieldPath.
var downwardEnv = map[string]string{
	"POD_NAME":        "metadata.name",
	"POD_NAMESPACE":   "metadata.namespace",
	"POD_UID":         "metadata.uid",
	"POD_IP":          "status.podIP",
	"POD_IPS":         "status.podIPs",
	"NODE_NAME":       "spec.nodeName",
	"NODE_IP":         "status.hostIP",
	"SERVICE_ACCOUNT": "spec.serviceAccountName",
}

// The resource env, with the divisor that makes the binaries' units
// (millicores, bytes) come out.
var resourceEnv = map[string]struct{ resource, divisor string }{
	"CPU_LIMIT":    {"limits.cpu", "1m"},
	"MEMORY_LIMIT": {"limits.memory", "1"},
}

// The binaries' defaults, used where the manifest sets no env.
const (
	defaultDrainDelay      = 5 * time.Second
	defaultShutdownTimeout = 10 * time.Second
	defaultDownwardDir     = "/etc/downward"
	defaultGracePeriod     = 30
)

// workload is a pod controller of any kind, reduced to what the checks need.
type workload struct {
	kind, namespace, name string
	selector              *metav1.LabelSelector
	template              *corev1.PodTemplateSpec
	replicas              *int32 // nil for a DaemonSet
	serviceName           string // StatefulSet governing Service
}

func (w workload) id() string { return objectID(w.kind, w.namespace, w.name) }

func (s *Set) workloads() []workload {
	var out []workload
	for _, d := range s.Deployments {
		out = append(out, workload{"Deployment", d.Namespace, d.Name, d.Spec.Selector, &d.Spec.Template, d.Spec.Replicas, ""})
	}
	for _, d := range s.StatefulSets {
		out = append(out, workload{"StatefulSet", d.Namespace, d.Name, d.Spec.Selector, &d.Spec.Template, d.Spec.Replicas, d.Spec.ServiceName})
	}
	for _, d := range s.DaemonSets {
		out = append(out, workload{"DaemonSet", d.Namespace, d.Name, d.Spec.Selector, &d.Spec.Template, nil, ""})
	}
	return out
}

// Check runs every static check over a decoded overlay and returns all
// findings joined; each names the object and the field it is about.
func Check(s *Set, opt Options) error {
	c := checker{set: s, opt: opt}
	ws := s.workloads()
	if len(ws) == 0 {
		c.errorf("overlay", "has no workloads")
	}
	for _, w := range ws {
		c.workload(w)
	}
	for _, svc := range s.Services {
		c.service(svc, ws)
	}
	c.autoscalers(ws)
	c.budgets(ws)
	return errors.Join(c.errs...)
}

type checker struct {
	set  *Set
	opt  Options
	errs []error
}

func (c *checker) errorf(id, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: "+format, append([]any{id}, args...)...))
}

func selectorMatches(sel *metav1.LabelSelector, l map[string]string) (bool, error) {
	if sel == nil {
		return false, errors.New("no selector")
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false, err
	}
	if s.Empty() {
		return false, errors.New("empty selector selects everything")
	}
	return s.Matches(labels.Set(l)), nil
}

func (c *checker) workload(w workload) {
	id := w.id()
	tl := w.template.Labels
	if ok, err := selectorMatches(w.selector, tl); err != nil {
		c.errorf(id, "spec.selector: %v", err)
	} else if !ok {
		c.errorf(id, "spec.selector %v does not match spec.template.metadata.labels %v", metav1.FormatLabelSelector(w.selector), tl)
	}

	tier, controlling := tl["component"], tl["controlling"]
	if tier != "backend" && tier != "frontend" {
		c.errorf(id, "spec.template.metadata.labels.component is %q, want backend or frontend", tier)
	}
	if !slices.Contains([]string{"deployment", "daemonset", "statefulset"}, controlling) {
		c.errorf(id, "spec.template.metadata.labels.controlling is %q, want deployment, daemonset or statefulset", controlling)
	}
	if tier == "frontend" && w.kind != "Deployment" {
		c.errorf(id, "a frontend must be a Deployment")
	}

	if w.kind != "DaemonSet" {
		spread := false
		for i, tsc := range w.template.Spec.TopologySpreadConstraints {
			if tsc.TopologyKey == corev1.LabelHostname {
				spread = true
			}
			if ok, err := selectorMatches(tsc.LabelSelector, tl); err != nil || !ok {
				c.errorf(id, "spec.template.spec.topologySpreadConstraints[%d].labelSelector does not select the template's own pods (%v)", i, err)
			}
		}
		if !spread {
			c.errorf(id, "spec.template.spec.topologySpreadConstraints: none over %s", corev1.LabelHostname)
		}
	}

	c.pod(id, w.template)
	c.podSecurity(w)
	if tier == "frontend" {
		for _, ct := range w.template.Spec.Containers {
			c.targets(id, w.namespace, ct)
		}
	}
}

func (c *checker) pod(id string, tpl *corev1.PodTemplateSpec) {
	spec := &tpl.Spec
	const p = "spec.template.spec"
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		c.errorf(id, "%s.automountServiceAccountToken must be false", p)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		c.errorf(id, "%s.securityContext.seccompProfile.type must be RuntimeDefault", p)
	}
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot

	grace := int64(defaultGracePeriod)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if len(spec.Containers) == 0 {
		c.errorf(id, "%s.containers is empty", p)
	}
	for _, ct := range spec.Containers {
		cp := fmt.Sprintf("%s.containers[%s]", p, ct.Name)
		c.container(id, cp, ct, podNonRoot)
		c.drain(id, cp, ct, grace)
		c.downwardVolume(id, cp, ct, volumes)
		c.probes(id, cp, ct)
	}
}

func envValue(ct corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range ct.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func (c *checker) container(id, cp string, ct corev1.Container, podNonRoot bool) {
	sc := ct.SecurityContext
	if sc == nil {
		c.errorf(id, "%s.securityContext is missing", cp)
		return
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.errorf(id, "%s.securityContext.readOnlyRootFilesystem must be true", cp)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.errorf(id, "%s.securityContext.allowPrivilegeEscalation must be false", cp)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		c.errorf(id, "%s.securityContext.capabilities.drop must contain ALL", cp)
	}
	if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
		c.errorf(id, "%s.securityContext.runAsNonRoot must be true", cp)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := ct.Resources.Requests[r]; !ok {
			c.errorf(id, "%s.resources.requests.%s is missing", cp, r)
		}
		if _, ok := ct.Resources.Limits[r]; !ok {
			c.errorf(id, "%s.resources.limits.%s is missing", cp, r)
		}
	}
	for name, path := range downwardEnv {
		e, ok := envValue(ct, name)
		if !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != path {
			c.errorf(id, "%s.env[%s] must come from the Downward API fieldRef %s", cp, name, path)
		}
	}
	for name, want := range resourceEnv {
		e, ok := envValue(ct, name)
		if !ok || e.ValueFrom == nil || e.ValueFrom.ResourceFieldRef == nil {
			c.errorf(id, "%s.env[%s] must come from resourceFieldRef %s", cp, name, want.resource)
			continue
		}
		ref := e.ValueFrom.ResourceFieldRef
		if ref.Resource != want.resource || ref.Divisor.Cmp(resource.MustParse(want.divisor)) != 0 {
			c.errorf(id, "%s.env[%s].valueFrom.resourceFieldRef is %s/%s, want %s with divisor %s", cp, name, ref.Resource, ref.Divisor.String(), want.resource, want.divisor)
		}
		if ref.ContainerName != "" && ref.ContainerName != ct.Name {
			c.errorf(id, "%s.env[%s].valueFrom.resourceFieldRef.containerName is %q, not this container", cp, name, ref.ContainerName)
		}
	}
	if ct.Name == "frontend" && !slices.Equal(ct.Command, []string{"/usr/local/bin/frontend"}) {
		c.errorf(id, "%s.command is %q, want [/usr/local/bin/frontend]", cp, ct.Command)
	}
}

// drain checks that the kubelet waits long enough for the binary's own
// shutdown sequence: NOT_SERVING for DRAIN_DELAY, then GracefulStop for up to
// SHUTDOWN_TIMEOUT. A shorter grace period SIGKILLs in-flight calls.
func (c *checker) drain(id, cp string, ct corev1.Container, grace int64) {
	dur := func(name string, def time.Duration) time.Duration {
		e, ok := envValue(ct, name)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(e.Value)
		if err != nil {
			c.errorf(id, "%s.env[%s]: %v", cp, name, err)
			return def
		}
		return d
	}
	need := dur("DRAIN_DELAY", defaultDrainDelay) + dur("SHUTDOWN_TIMEOUT", defaultShutdownTimeout)
	if time.Duration(grace)*time.Second <= need {
		c.errorf(id, "spec.template.spec.terminationGracePeriodSeconds is %d, must exceed DRAIN_DELAY+SHUTDOWN_TIMEOUT (%s) of %s", grace, need, cp)
	}
}

func (c *checker) downwardVolume(id, cp string, ct corev1.Container, volumes map[string]corev1.Volume) {
	dir := defaultDownwardDir
	if e, ok := envValue(ct, "DOWNWARD_DIR"); ok {
		dir = e.Value
	}
	for _, m := range ct.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		v, ok := volumes[m.Name]
		if !ok || v.DownwardAPI == nil {
			c.errorf(id, "%s.volumeMounts[%s] at %s is not a downwardAPI volume", cp, m.Name, dir)
			return
		}
		got := map[string]string{}
		for _, it := range v.DownwardAPI.Items {
			if it.FieldRef != nil {
				got[it.Path] = it.FieldRef.FieldPath
			}
		}
		for path, field := range map[string]string{"labels": "metadata.labels", "annotations": "metadata.annotations"} {
			if got[path] != field {
				c.errorf(id, "spec.template.spec.volumes[%s].downwardAPI.items: want %s from %s", m.Name, path, field)
			}
		}
		return
	}
	c.errorf(id, "%s.volumeMounts: no Downward API volume at DOWNWARD_DIR %s", cp, dir)
}

// probes: all three on every container, native gRPC on the backend and HTTP
// on the frontend, each pointing at a port the container declares.
func (c *checker) probes(id, cp string, ct corev1.Container) {
	byName := map[string]int32{}
	byNumber := map[int32]bool{}
	for _, p := range ct.Ports {
		byNumber[p.ContainerPort] = true
		if p.Name != "" {
			byName[p.Name] = p.ContainerPort
		}
	}
	declared := func(port intstr.IntOrString) bool {
		if port.Type == intstr.String {
			_, ok := byName[port.StrVal]
			return ok
		}
		return byNumber[port.IntVal]
	}
	for kind, pr := range map[string]*corev1.Probe{"startupProbe": ct.StartupProbe, "readinessProbe": ct.ReadinessProbe, "livenessProbe": ct.LivenessProbe} {
		pp := cp + "." + kind
		if pr == nil {
			c.errorf(id, "%s is missing", pp)
			continue
		}
		switch h := pr.ProbeHandler; {
		case h.GRPC != nil:
			if ct.Name == "frontend" {
				c.errorf(id, "%s: the frontend is probed over HTTP (/healthz, /readyz)", pp)
			}
			if !byNumber[h.GRPC.Port] {
				c.errorf(id, "%s.grpc.port %d is not a declared containerPort", pp, h.GRPC.Port)
			}
		case h.HTTPGet != nil:
			if ct.Name == "backend" {
				c.errorf(id, "%s: the backend must use a native gRPC probe", pp)
			}
			if !declared(h.HTTPGet.Port) {
				c.errorf(id, "%s.httpGet.port %s is not a declared containerPort", pp, h.HTTPGet.Port.String())
			}
		case h.TCPSocket != nil:
			if !declared(h.TCPSocket.Port) {
				c.errorf(id, "%s.tcpSocket.port %s is not a declared containerPort", pp, h.TCPSocket.Port.String())
			}
		default:
			c.errorf(id, "%s has no grpc, httpGet or tcpSocket handler", pp)
		}
	}
}

// podSecurity evaluates the pod template with the Pod Security Admission
// library at the levels its namespace enforces and warns about.
func (c *checker) podSecurity(w workload) {
	var ns *corev1.Namespace
	for _, n := range c.set.Namespaces {
		if n.Name == w.namespace {
			ns = n
		}
	}
	if ns == nil {
		c.errorf(w.id(), "metadata.namespace %q is not created by this overlay", w.namespace)
		return
	}
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		c.errorf(w.id(), "pod security evaluator: %v", err)
		return
	}
	for _, mode := range []string{"enforce", "warn"} {
		lvl, err := psapi.ParseLevel(ns.Labels["pod-security.kubernetes.io/"+mode])
		if err != nil {
			c.errorf("Namespace "+ns.Name, "metadata.labels[pod-security.kubernetes.io/%s]: %v", mode, err)
			continue
		}
		// The project's namespace must stay restricted: weakening it would
		// make every other Pod Security finding here moot.
		if mode == "enforce" && ns.Name == "knowingnode" && lvl != psapi.LevelRestricted {
			c.errorf("Namespace "+ns.Name, "metadata.labels[pod-security.kubernetes.io/enforce] is %q, want restricted", lvl)
		}
		lv := psapi.LevelVersion{Level: lvl, Version: psapi.LatestVersion()}
		for _, r := range eval.EvaluatePod(lv, &w.template.ObjectMeta, &w.template.Spec) {
			if r.Allowed {
				continue
			}
			if mode == "warn" && slices.Contains(c.opt.Exempt[w.id()], r.ForbiddenReason) {
				continue
			}
			c.errorf(w.id(), "spec.template violates Pod Security %q (%s in namespace %s): %s (%s)", lvl, mode, ns.Name, r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
}

func (c *checker) service(svc *corev1.Service, ws []workload) {
	id := objectID("Service", svc.Namespace, svc.Name)
	if len(svc.Spec.Selector) == 0 {
		c.errorf(id, "spec.selector is empty")
		return
	}
	var matched []workload
	for _, w := range ws {
		if w.namespace == svc.Namespace && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(w.template.Labels)) {
			matched = append(matched, w)
		}
	}
	if len(matched) == 0 {
		c.errorf(id, "spec.selector %v selects no workload's pods in namespace %s", svc.Spec.Selector, svc.Namespace)
		return
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == "" {
			c.errorf(id, "spec.ports[%d] has no name (cluster DNS publishes SRV only for named ports)", p.Port)
		}
		for _, w := range matched {
			if !templateDeclares(w.template, p.TargetPort, p.Port) {
				c.errorf(id, "spec.ports[%s].targetPort %s is not a containerPort of %s", p.Name, p.TargetPort.String(), w.id())
			}
		}
	}
}

func templateDeclares(t *corev1.PodTemplateSpec, target intstr.IntOrString, port int32) bool {
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(port) // an unset targetPort defaults to port
	}
	for _, ct := range t.Spec.Containers {
		for _, p := range ct.Ports {
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return true
			}
		}
	}
	return false
}

func (c *checker) autoscalers(ws []workload) {
	covered := map[string]int{}
	for _, h := range c.set.HPAs {
		id := objectID("HorizontalPodAutoscaler", h.Namespace, h.Name)
		ref := h.Spec.ScaleTargetRef
		target := objectID(ref.Kind, h.Namespace, ref.Name)
		var w *workload
		for i := range ws {
			if ws[i].id() == target {
				w = &ws[i]
			}
		}
		if w == nil || w.replicas == nil {
			c.errorf(id, "spec.scaleTargetRef %s is not a scalable workload of this overlay", target)
			continue
		}
		covered[target]++
		if h.Spec.MinReplicas != nil && *w.replicas < *h.Spec.MinReplicas {
			c.errorf(id, "spec.minReplicas %d exceeds %s replicas %d", *h.Spec.MinReplicas, target, *w.replicas)
		}
		if *w.replicas > h.Spec.MaxReplicas {
			c.errorf(id, "spec.maxReplicas %d is below %s replicas %d", h.Spec.MaxReplicas, target, *w.replicas)
		}
		c.behavior(id, h.Spec.Behavior)
		c.budgetAllows(id, w, h.Spec.MinReplicas)
	}
	for _, w := range ws {
		if w.replicas != nil && covered[w.id()] != 1 {
			c.errorf(w.id(), "has %d HorizontalPodAutoscalers, want 1", covered[w.id()])
		}
	}
}

// behavior: scale up at once, scale down only after a stabilization window
// (so a lull does not remove the pods the next burst needs), and never
// disabled in either direction in the shipped manifests.
func (c *checker) behavior(id string, b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
	const maxUpWindow, minDownWindow = 30, 60
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil {
		c.errorf(id, "spec.behavior must set scaleUp and scaleDown")
		return
	}
	for dir, r := range map[string]*autoscalingv2.HPAScalingRules{"scaleUp": b.ScaleUp, "scaleDown": b.ScaleDown} {
		if r.SelectPolicy != nil && *r.SelectPolicy == autoscalingv2.DisabledPolicySelect {
			c.errorf(id, "spec.behavior.%s.selectPolicy is Disabled", dir)
		}
		if len(r.Policies) == 0 {
			c.errorf(id, "spec.behavior.%s.policies is empty", dir)
		}
	}
	if w := b.ScaleUp.StabilizationWindowSeconds; w == nil || *w > maxUpWindow {
		c.errorf(id, "spec.behavior.scaleUp.stabilizationWindowSeconds must be set and at most %d (scale up fast)", maxUpWindow)
	}
	if w := b.ScaleDown.StabilizationWindowSeconds; w == nil || *w < minDownWindow {
		c.errorf(id, "spec.behavior.scaleDown.stabilizationWindowSeconds must be set and at least %d (scale down after a window)", minDownWindow)
	}
}

// budgetAllows: at the HPA's minimum, the workload's budget still allows one
// voluntary disruption, so a node drain can always proceed.
func (c *checker) budgetAllows(id string, w *workload, minReplicas *int32) {
	lo := int32(1)
	if minReplicas != nil {
		lo = *minReplicas
	}
	for _, b := range c.set.PDBs {
		if b.Namespace != w.namespace {
			continue
		}
		if ok, err := selectorMatches(b.Spec.Selector, w.template.Labels); err != nil || !ok {
			continue
		}
		var allowed int
		switch {
		case b.Spec.MaxUnavailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MaxUnavailable, int(lo), true)
			if err != nil {
				c.errorf(id, "PodDisruptionBudget %s: spec.maxUnavailable: %v", b.Name, err)
				continue
			}
			allowed = v
		case b.Spec.MinAvailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(b.Spec.MinAvailable, int(lo), true)
			if err != nil {
				c.errorf(id, "PodDisruptionBudget %s: spec.minAvailable: %v", b.Name, err)
				continue
			}
			allowed = int(lo) - v
		}
		if allowed < 1 {
			c.errorf(id, "PodDisruptionBudget %s allows no disruption at spec.minReplicas %d", b.Name, lo)
		}
	}
}

func (c *checker) budgets(ws []workload) {
	for _, w := range ws {
		n := 0
		for _, b := range c.set.PDBs {
			if b.Namespace != w.namespace {
				continue
			}
			if ok, err := selectorMatches(b.Spec.Selector, w.template.Labels); err == nil && ok {
				n++
			}
		}
		if n != 1 {
			c.errorf(w.id(), "is selected by %d PodDisruptionBudgets, want 1", n)
		}
	}
	for _, b := range c.set.PDBs {
		id := objectID("PodDisruptionBudget", b.Namespace, b.Name)
		if _, err := selectorMatches(b.Spec.Selector, nil); err != nil {
			c.errorf(id, "spec.selector: %v", err)
		}
		if b.Spec.MaxUnavailable != nil || (b.Spec.MinAvailable != nil && b.Spec.MinAvailable.Type == intstr.String) {
			// The disruption controller needs a scale subresource for these,
			// which a DaemonSet lacks: the budget would never allow anything.
			for _, w := range ws {
				if w.kind == "DaemonSet" && w.namespace == b.Namespace {
					if ok, _ := selectorMatches(b.Spec.Selector, w.template.Labels); ok {
						c.errorf(id, "spec: a DaemonSet's budget must be an integer minAvailable")
					}
				}
			}
		}
	}
}

// targets checks that every frontend target names a Service of the overlay
// that can answer the way the target's mode asks.
func (c *checker) targets(id, ns string, ct corev1.Container) {
	e, ok := envValue(ct, "TARGETS")
	if !ok || strings.TrimSpace(e.Value) == "" {
		c.errorf(id, "containers[%s].env[TARGETS] is empty", ct.Name)
		return
	}
	ts, err := ParseTargets(e.Value)
	if err != nil {
		c.errorf(id, "containers[%s].env[TARGETS]: %v", ct.Name, err)
		return
	}
	for _, t := range ts {
		where := fmt.Sprintf("containers[%s].env[TARGETS] %s=%s", ct.Name, t.Name, t.QType)
		if err := c.target(t, ns); err != nil {
			c.errorf(id, "%s: %v", where, err)
		}
	}
}

func (c *checker) target(t discovery.Spec, ns string) error {
	host, portName, sts := t.Host, "grpc", ""
	var port int
	switch t.QType {
	case discovery.Static:
		return errors.New("static targets do not belong in a manifest: discover through a Service")
	case discovery.SRV:
		labels := strings.SplitN(host, ".", 3)
		if len(labels) != 3 || !strings.HasPrefix(labels[0], "_") || labels[1] != "_tcp" {
			return fmt.Errorf("SRV name %q is not _<port>._tcp.<svc>...", host)
		}
		portName, host = strings.TrimPrefix(labels[0], "_"), labels[2]
	case discovery.StatefulSet:
		sts, portName = t.StatefulSet, t.PortName
	}
	if t.Port != "" {
		var err error
		if port, err = strconv.Atoi(t.Port); err != nil {
			return fmt.Errorf("port %q is not a number", t.Port)
		}
	}
	if t.Server != "" {
		return fmt.Errorf("names DNS server %s: in a pod, leave it empty for the cluster's resolver", t.Server)
	}
	name, svcNS, err := serviceRef(host, ns)
	if err != nil {
		return err
	}
	var svc *corev1.Service
	for _, s := range c.set.Services {
		if s.Name == name && s.Namespace == svcNS {
			svc = s
		}
	}
	if svc == nil {
		return fmt.Errorf("names Service %s/%s, which the overlay does not define", svcNS, name)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == portName {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return fmt.Errorf("Service %s/%s has no port named %q", svcNS, name, portName)
	}
	if port != 0 && sp.Port != int32(port) {
		return fmt.Errorf("Service %s/%s port %q is %d, the target says %d", svcNS, name, portName, sp.Port, port)
	}
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	if (t.QType == discovery.SRV || t.QType == discovery.StatefulSet) && !headless {
		return fmt.Errorf("Service %s/%s must be headless (clusterIP: None) for per-pod %s records", svcNS, name, t.QType)
	}
	if t.QType == discovery.StatefulSet {
		for _, s := range c.set.StatefulSets {
			if s.Name == sts && s.Namespace == svcNS {
				if s.Spec.ServiceName != name {
					return fmt.Errorf("StatefulSet %s/%s is governed by Service %q, not %q: no per-pod names", svcNS, sts, s.Spec.ServiceName, name)
				}
				return nil
			}
		}
		return fmt.Errorf("names StatefulSet %s/%s, which the overlay does not define", svcNS, sts)
	}
	return nil
}
