{{/*
The frontend tier's peers, for the matrix: a headless Service of the
frontends' gRPC port, frontend-peers-<controlling>, whose ready pods the
matrix asks to fan out (the frontend's PEERS). Params: root, controlling.
*/}}
{{- define "knowingnode.frontendPeers" -}}
{{- $ns := include "knowingnode.namespace" .root -}}
{{- $meta := dict "root" .root "name" (printf "frontend-peers-%s" .controlling) "namespace" $ns "component" "frontend" "controlling" .controlling -}}
---
apiVersion: v1
kind: Service
metadata:
  {{- include "knowingnode.metadata" $meta | nindent 2 }}
spec:
  clusterIP: None
  selector:
    {{- include "knowingnode.selectorLabels" $meta | nindent 4 }}
  ports:
    - name: grpc
      port: 9090
      targetPort: grpc
      protocol: TCP
{{- end -}}

{{/* The PEERS spec of frontend-<controlling>: its peers Service by DNS. */}}
{{- define "knowingnode.frontendPeersSpec" -}}
{{- printf "dns:///frontend-peers-%s.%s.svc.%s:9090" .controlling (include "knowingnode.namespace" .root) .root.Values.clusterDomain -}}
{{- end -}}
