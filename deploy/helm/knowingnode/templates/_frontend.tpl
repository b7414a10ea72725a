{{/*
The frontend of one topology: Deployment, Service, HPA and PDB, named
frontend-<controlling>. Params: root, controlling, targets (the default
TARGETS), fe (the topology's frontend values), serviceAccount (optional: the
pod's account, whose token it then mounts), peers (PEERS, optional).
*/}}
{{- define "knowingnode.frontend" -}}
{{- $v := .root.Values -}}
{{- $ns := include "knowingnode.namespace" .root -}}
{{- $name := printf "frontend-%s" .controlling -}}
{{- $meta := dict "root" .root "name" $name "namespace" $ns "component" "frontend" "controlling" .controlling -}}
{{- $resources := $v.frontend.resources -}}
{{- if .fe.resources }}{{ $resources = .fe.resources }}{{ end -}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "knowingnode.metadata" $meta | nindent 2 }}
spec:
  replicas: {{ .fe.replicas }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "knowingnode.selectorLabels" $meta | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "knowingnode.podLabels" $meta | nindent 8 }}
      annotations:
        knowingnode.io/tier: frontend
        # Scraped by Prometheus' kubernetes-pods job: /metrics on the HTTP port.
        prometheus.io/scrape: "true"
        prometheus.io/port: "8080"
        prometheus.io/path: /metrics
        knowingnode.io/description: Discovers every backend through cluster DNS and fans out to all of them.
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- $common := include "knowingnode.podCommon" .root }}
      {{- with .serviceAccount }}
      {{- /* The one frontend that reads the API (endpointslices.yaml) mounts its account's token. */}}
      {{- $common = replace "automountServiceAccountToken: false" (printf "serviceAccountName: %s\nautomountServiceAccountToken: true" .) $common }}
      {{- end }}
      {{- $common | nindent 6 }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          # Spreading is a preference: a small cluster never leaves a
          # frontend Pending.
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              component: frontend
              controlling: {{ .controlling }}
          matchLabelKeys:
            - pod-template-hash
      containers:
        - name: frontend
          image: {{ include "knowingnode.image" .root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: ["/usr/local/bin/frontend"]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
            - name: grpc
              containerPort: 9090
              protocol: TCP
          env:
            # First, where the overlays' patch puts it: the chart test
            # compares env in order.
            - name: TARGETS
              value: {{ .fe.targets | default .targets | quote }}
            {{- with .peers }}
            - name: PEERS
              value: {{ . | quote }}
            {{- end }}
            - name: HTTP_ADDR
              value: ":8080"
            - name: GRPC_ADDR
              value: ":9090"
            - name: REFRESH_INTERVAL
              value: {{ $v.frontend.refreshInterval | quote }}
            - name: DRAIN_DELAY
              value: {{ $v.frontend.drainDelay | quote }}
            - name: SHUTDOWN_TIMEOUT
              value: {{ $v.frontend.shutdownTimeout | quote }}
            - name: MAX_CONNECTION_AGE
              value: {{ $v.frontend.maxConnectionAge | quote }}
            - name: MAX_CONNECTION_AGE_GRACE
              value: {{ $v.frontend.maxConnectionAgeGrace | quote }}
            - name: LOG_FORMAT
              value: {{ $v.frontend.logFormat | quote }}
            {{- include "knowingnode.downwardEnv" (dict "container" "frontend") | nindent 12 }}
            {{- with $v.frontend.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- include "knowingnode.containerSecurityContext" . | nindent 12 }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 1
            failureThreshold: 30
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            failureThreshold: 3
            timeoutSeconds: 2
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 2
            failureThreshold: 2
            timeoutSeconds: 2
          volumeMounts:
            {{- include "knowingnode.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "knowingnode.volumes" . | nindent 8 }}
---
# Browser, REST and gRPC access to the frontend.
apiVersion: v1
kind: Service
metadata:
  {{- include "knowingnode.metadata" $meta | nindent 2 }}
spec:
  type: {{ .fe.service.type }}
  selector:
    {{- include "knowingnode.selectorLabels" $meta | nindent 4 }}
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
      {{- if and (eq .fe.service.type "NodePort") .fe.service.nodePorts.http }}
      nodePort: {{ .fe.service.nodePorts.http }}
      {{- end }}
    - name: grpc
      port: 9090
      targetPort: grpc
      protocol: TCP
      {{- if and (eq .fe.service.type "NodePort") .fe.service.nodePorts.grpc }}
      nodePort: {{ .fe.service.nodePorts.grpc }}
      {{- end }}
{{ include "knowingnode.hpa" (merge (dict "kind" "Deployment" "hpa" .fe.hpa) $meta) }}
{{ include "knowingnode.pdb" (merge (dict "pdb" .fe.pdb) $meta) }}
{{- end -}}
