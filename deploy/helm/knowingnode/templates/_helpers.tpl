{{/*
Names are fixed, as in the kustomize overlays (backend, backend-sts,
backend-ds, frontend-<topology>): the frontends' targets and the per-pod DNS
names of the StatefulSet depend on them, so one release per namespace.
*/}}

{{- define "knowingnode.namespace" -}}
{{- .Values.namespace.name -}}
{{- end -}}

{{- define "knowingnode.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The labels that select a tier of one topology; never changes after install. */}}
{{- define "knowingnode.selectorLabels" -}}
app.kubernetes.io/name: knowingnode
component: {{ .component }}
controlling: {{ .controlling }}
{{- end -}}

{{/* Metadata labels of every object: the kustomize labels, Helm's, and commonLabels. */}}
{{- define "knowingnode.labels" -}}
app.kubernetes.io/name: knowingnode
app.kubernetes.io/part-of: knowingnode
{{- with .component }}
component: {{ . }}
{{- end }}
{{- with .controlling }}
controlling: {{ . }}
{{- end }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata: name, namespace, labels, annotations. */}}
{{- define "knowingnode.metadata" -}}
name: {{ .name }}
{{- with .namespace }}
namespace: {{ . }}
{{- end }}
labels:
  {{- include "knowingnode.labels" . | nindent 2 }}
{{- with .root.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod labels: the selector labels plus part-of and podLabels. */}}
{{- define "knowingnode.podLabels" -}}
app.kubernetes.io/name: knowingnode
app.kubernetes.io/part-of: knowingnode
component: {{ .component }}
controlling: {{ .controlling }}
{{- with .root.Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Downward API env both tiers read, and the resource env. */}}
{{- define "knowingnode.downwardEnv" -}}
- name: DOWNWARD_DIR
  value: /etc/downward
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: POD_IPS
  valueFrom:
    fieldRef:
      fieldPath: status.podIPs
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: NODE_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: SERVICE_ACCOUNT
  valueFrom:
    fieldRef:
      fieldPath: spec.serviceAccountName
- name: CPU_LIMIT
  valueFrom:
    resourceFieldRef:
      containerName: {{ .container }}
      resource: limits.cpu
      divisor: 1m
# Also the binary's soft memory limit (90% of it, unless GOMEMLIMIT is set).
- name: MEMORY_LIMIT
  valueFrom:
    resourceFieldRef:
      containerName: {{ .container }}
      resource: limits.memory
      divisor: "1"
{{- end -}}

{{/* Restricted Pod Security: non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp. */}}
{{- define "knowingnode.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "knowingnode.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The Downward API volume (labels, annotations) and the only writable place. */}}
{{- define "knowingnode.volumeMounts" -}}
- name: downward
  mountPath: /etc/downward
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "knowingnode.volumes" -}}
- name: downward
  downwardAPI:
    items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
      - path: annotations
        fieldRef:
          fieldPath: metadata.annotations
# The root filesystem is read-only; this is the only writable place.
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end -}}

{{/* Pod-level settings both tiers share. */}}
{{- define "knowingnode.podCommon" -}}
# Neither tier talks to the Kubernetes API: identity comes from the Downward
# API and discovery from DNS, so no token.
automountServiceAccountToken: false
enableServiceLinks: false
# DRAIN_DELAY + SHUTDOWN_TIMEOUT + margin: never SIGKILL a draining pod.
terminationGracePeriodSeconds: 20
securityContext:
  {{- include "knowingnode.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
A backend pod template. Params: root, controlling, spread (topology spread
constraint), matchLabelKeys (pod-template-hash, Deployments only), hostPort
(0: none), resources.
*/}}
{{- define "knowingnode.backendPodTemplate" -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "knowingnode.podLabels" (dict "root" .root "component" "backend" "controlling" .controlling) | nindent 4 }}
  annotations:
    knowingnode.io/tier: backend
    # Scraped by Prometheus' kubernetes-pods job: the admin port.
    prometheus.io/scrape: "true"
    prometheus.io/port: "9091"
    prometheus.io/path: /metrics
    knowingnode.io/description: Reports its own pod identity from the Downward API.
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- include "knowingnode.podCommon" .root | nindent 2 }}
  {{- if .spread }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: DoNotSchedule
      labelSelector:
        matchLabels:
          component: backend
          controlling: {{ .controlling }}
      {{- if .matchLabelKeys }}
      matchLabelKeys:
        - pod-template-hash
      {{- end }}
  {{- end }}
  containers:
    - name: backend
      image: {{ include "knowingnode.image" .root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      command: ["/usr/local/bin/backend"]
      ports:
        - name: grpc
          containerPort: 9090
          protocol: TCP
          {{- if .hostPort }}
          hostPort: {{ .hostPort }}
          {{- end }}
        - name: admin
          containerPort: 9091
          protocol: TCP
      env:
        - name: GRPC_ADDR
          value: ":9090"
        - name: ADMIN_ADDR
          value: ":9091"
        - name: DRAIN_DELAY
          value: {{ $v.backend.drainDelay | quote }}
        - name: SHUTDOWN_TIMEOUT
          value: {{ $v.backend.shutdownTimeout | quote }}
        - name: MAX_CONNECTION_AGE
          value: {{ $v.backend.maxConnectionAge | quote }}
        - name: MAX_CONNECTION_AGE_GRACE
          value: {{ $v.backend.maxConnectionAgeGrace | quote }}
        - name: LOG_FORMAT
          value: {{ $v.backend.logFormat | quote }}
        {{- include "knowingnode.downwardEnv" (dict "container" "backend") | nindent 8 }}
        {{- with $v.backend.fault }}
        {{- with .latency }}
        - name: FAULT_LATENCY
          value: {{ . | quote }}
        {{- end }}
        {{- with .jitter }}
        - name: FAULT_JITTER
          value: {{ . | quote }}
        {{- end }}
        {{- if ne (toString .errorRate) "" }}
        - name: FAULT_ERROR_RATE
          value: {{ toString .errorRate | quote }}
        {{- end }}
        {{- if ne (toString .errorCode) "" }}
        - name: FAULT_ERROR_CODE
          value: {{ toString .errorCode | quote }}
        {{- end }}
        {{- end }}
        {{- with $v.backend.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- include "knowingnode.containerSecurityContext" . | nindent 8 }}
      # Native gRPC probes against grpc.health.v1.Health on the serving port.
      startupProbe:
        grpc:
          port: 9090
        periodSeconds: 1
        failureThreshold: 30
      # On SIGTERM the backend turns NOT_SERVING for DRAIN_DELAY and is
      # dropped from endpoints.
      readinessProbe:
        grpc:
          port: 9090
        periodSeconds: 2
        failureThreshold: 1
        timeoutSeconds: 1
      # Slow on purpose: 3 x 10s outlasts the drain, so a draining backend is
      # never restarted.
      livenessProbe:
        grpc:
          port: 9090
        periodSeconds: 10
        failureThreshold: 3
        timeoutSeconds: 2
      volumeMounts:
        {{- include "knowingnode.volumeMounts" . | nindent 8 }}
  volumes:
    {{- include "knowingnode.volumes" . | nindent 4 }}
{{- end -}}

{{/* HPA. Params: root, name, namespace, component, controlling, kind, hpa. */}}
{{- define "knowingnode.hpa" -}}
{{- if .hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "knowingnode.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: {{ .kind }}
    name: {{ .name }}
  minReplicas: {{ .hpa.minReplicas }}
  maxReplicas: {{ .hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .hpa.targetCPUUtilizationPercentage }}
  {{- with (.hpa.behavior | default .root.Values.autoscalingBehavior) }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* PDB. Params: root, name, namespace, component, controlling, pdb. */}}
{{- define "knowingnode.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "knowingnode.metadata" . | nindent 2 }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable }}
  {{- end }}
  # A crash-looping pod must not block node drains.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "knowingnode.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The namespace of a Pod Security level ("restricted" or "privileged" enforce). */}}
{{- define "knowingnode.namespaceObject" -}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .name }}
  labels:
    app.kubernetes.io/part-of: knowingnode
    pod-security.kubernetes.io/enforce: {{ .enforce }}
    pod-security.kubernetes.io/enforce-version: latest
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/warn-version: latest
    pod-security.kubernetes.io/audit: restricted
    pod-security.kubernetes.io/audit-version: latest
    app.kubernetes.io/instance: {{ .root.Release.Name }}
    app.kubernetes.io/managed-by: {{ .root.Release.Service }}
    {{- with .root.Values.commonLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .root.Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Checks the schema cannot express; fails the render with a message naming the value. */}}
{{- define "knowingnode.validate" -}}
{{- $t := .Values.topologies -}}
{{- if not (or $t.deployment.enabled $t.statefulset.enabled $t.daemonset.enabled) -}}
{{- fail "no topology is enabled: set topologies.deployment.enabled, topologies.statefulset.enabled or topologies.daemonset.enabled to true" -}}
{{- end -}}
{{- range $name := list "deployment" "statefulset" "daemonset" -}}
{{- $topo := index $t $name -}}
{{- range $tier := list "backend" "frontend" -}}
{{- $hpa := dig $tier "hpa" (dict) $topo -}}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- fail (printf "topologies.%s.%s.hpa: minReplicas %v is above maxReplicas %v" $name $tier $hpa.minReplicas $hpa.maxReplicas) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
