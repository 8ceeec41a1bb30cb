{{/* Chart name, overridable. */}}
{{- define "mishards.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just <release> when it already contains the chart name. */}}
{{- define "mishards.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One name per service, as folder, script, values block and component: <fullname>-router. */}}
{{- define "mishards.componentName" -}}
{{- printf "%s-%s" (include "mishards.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mishards.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: name + instance (+ component, since three services share a release). */}}
{{- define "mishards.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mishards.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mishards.labels" -}}
{{ include "mishards.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: mishards
helm.sh/chart: {{ include "mishards.chart" .root }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "mishards.image" -}}
{{- $registry := .Values.image.registry -}}
{{- if .Values.global.imageRegistry -}}{{- $registry = .Values.global.imageRegistry -}}{{- end -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if $registry -}}{{ printf "%s/%s:%s" $registry .Values.image.repository $tag }}{{- else -}}{{ printf "%s:%s" .Values.image.repository $tag }}{{- end -}}
{{- end -}}

{{- define "mishards.discoveryServiceAccountName" -}}
{{- if .Values.discovery.serviceAccount.create -}}
{{- .Values.discovery.serviceAccount.name | default (include "mishards.componentName" (dict "root" . "component" "discovery")) -}}
{{- else -}}
{{- .Values.discovery.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Milvus gRPC port of one set (wo or ro): the sub-chart's grpcPort. */}}
{{- define "mishards.milvusPort" -}}
{{- (index .root.Values .set).grpcPort | default 19530 | int -}}
{{- end -}}

{{/* Stable addresses of the pods of one Milvus set (wo or ro), as the milvus sub-chart names them. */}}
{{- define "mishards.milvusAddresses" -}}
{{- $set := .set -}}
{{- $values := index .root.Values $set -}}
{{- $name := printf "%s-%s" .root.Release.Name $set -}}
{{- $port := include "mishards.milvusPort" . -}}
{{- $addresses := list -}}
{{- range $i := until (int $values.replicas) -}}
{{- $addresses = append $addresses (printf "%s-%d.%s-headless.%s.svc:%s" $name $i $name $.root.Release.Namespace $port) -}}
{{- end -}}
{{- join "," $addresses -}}
{{- end -}}

{{/* The ConfigMap holding the file back end's instances.yaml (the user's, or the chart's). */}}
{{- define "mishards.discoveryFileConfigMap" -}}
{{- .Values.discovery.file.existingConfigMap | default (printf "%s-instances" (include "mishards.componentName" (dict "root" . "component" "discovery"))) -}}
{{- end -}}

{{/* The Secret holding the Consul ACL token (the user's, or the chart's). */}}
{{- define "mishards.consulSecret" -}}
{{- .Values.discovery.consul.existingSecret | default (printf "%s-consul" (include "mishards.fullname" .)) -}}
{{- end -}}

{{/* The label selector the kubernetes discovery back end lists pods with. */}}
{{- define "mishards.milvusLabelSelector" -}}
{{- .Values.discovery.kubernetes.labelSelector | default (printf "app.kubernetes.io/name=milvus,app.kubernetes.io/instance=%s" .Release.Name) -}}
{{- end -}}

{{/* Database host, port, name, user, and the Secret + key holding the password. */}}
{{- define "mishards.database" -}}
{{- if .Values.mysql.enabled -}}
host: {{ printf "%s-mysql" .Release.Name }}
port: 3306
database: {{ .Values.mysql.auth.database }}
user: {{ .Values.mysql.auth.username }}
secret: {{ .Values.mysql.auth.existingSecret | default (printf "%s-mysql" .Release.Name) }}
key: mysql-password
{{- else -}}
host: {{ .Values.externalDatabase.host }}
port: {{ .Values.externalDatabase.port }}
database: {{ .Values.externalDatabase.database }}
user: {{ .Values.externalDatabase.user }}
secret: {{ .Values.externalDatabase.existingSecret | default (printf "%s-database" (include "mishards.fullname" .)) }}
key: {{ ternary .Values.externalDatabase.existingSecretPasswordKey "mysql-password" (ne .Values.externalDatabase.existingSecret "") }}
{{- end -}}
{{- end -}}

{{/* Render-time checks of combinations the schema cannot express; each fails with a fix. */}}
{{- define "mishards.validateValues" -}}
{{- if and .Values.mysql.enabled .Values.externalDatabase.host -}}
{{- fail "mysql.enabled=true and externalDatabase.host are both set: choose the local MySQL (mysql.enabled) or an external one (mysql.enabled=false)" -}}
{{- end -}}
{{- if and (not .Values.mysql.enabled) (not .Values.externalDatabase.host) -}}
{{- fail "mysql.enabled=false needs externalDatabase.host (and externalDatabase.password or externalDatabase.existingSecret)" -}}
{{- end -}}
{{- if and (not .Values.mysql.enabled) (not .Values.externalDatabase.password) (not .Values.externalDatabase.existingSecret) -}}
{{- fail "an external database needs externalDatabase.password or externalDatabase.existingSecret" -}}
{{- end -}}
{{- if and (eq .Values.discovery.className "file") (not .Values.discovery.file.instances) (not .Values.discovery.file.existingConfigMap) -}}
{{- fail "discovery.className=file needs discovery.file.instances (rendered into a ConfigMap) or discovery.file.existingConfigMap (yours, with the key instances.yaml)" -}}
{{- end -}}
{{- if and (eq .Values.discovery.className "consul") (not .Values.discovery.consul.host) -}}
{{- fail "discovery.className=consul needs discovery.consul.host (the Consul agent or server the discovery pod asks, e.g. consul-server.consul.svc)" -}}
{{- end -}}
{{- if and .Values.router.autoscaling.enabled (gt (int .Values.router.autoscaling.minReplicas) (int .Values.router.autoscaling.maxReplicas)) -}}
{{- fail "router.autoscaling.minReplicas is above router.autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and (eq .Values.discovery.className "kubernetes") (not .Values.discovery.rbac.create) (not .Values.discovery.serviceAccount.name) -}}
{{- fail "discovery.className=kubernetes with discovery.rbac.create=false needs discovery.serviceAccount.name: an account allowed to list and watch pods" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled=true needs tls.existingSecret: a kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt" -}}
{{- end -}}
{{- if and .Values.tls.mutual (not .Values.tls.enabled) -}}
{{- fail "tls.mutual=true needs tls.enabled=true (and tls.existingSecret)" -}}
{{- end -}}
{{- if and .Values.jaeger.enabled .Values.config.TRACER_CLASS_NAME (ne .Values.config.TRACER_CLASS_NAME "Jaeger") -}}
{{- fail "jaeger.enabled=true sends traces to Jaeger: leave config.TRACER_CLASS_NAME empty or set it to Jaeger" -}}
{{- end -}}
{{- end -}}

{{/* Pod-spec fragments every Mishards Deployment shares. */}}
{{- define "mishards.podScheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod security, for every pod of the release (the sub-charts use these too). The argument is a dict:
root (the chart's context), pod (its name in global.podSecurity.exceptions), and for images other
than Mishards' own (uid 10001, writes only its volumes) user, group, fsGroup, writableRootFilesystem.
Every pod gets seccomp RuntimeDefault; a pod not listed as an exception also gets the "restricted"
Pod Security level's settings: a non-root user, no privilege escalation, no capabilities. An
exception runs as its image says, and carries its reason as an annotation. */}}
{{- define "mishards.podSecurityException" -}}
{{- get (dig "podSecurity" "exceptions" dict .root.Values.global) .pod -}}
{{- end -}}

{{- define "mishards.podSecurityAnnotation" -}}
{{- with include "mishards.podSecurityException" . -}}
mishards.io/pod-security-exception: {{ . | quote }}
{{- end -}}
{{- end -}}

{{- define "mishards.podSecurityContext" -}}
securityContext:
  seccompProfile:
    type: RuntimeDefault
{{- if not (include "mishards.podSecurityException" .) }}
  runAsNonRoot: true
  runAsUser: {{ .user | default 10001 }}
  runAsGroup: {{ .group | default 10001 }}
  fsGroup: {{ .fsGroup | default 10001 }}
{{- end }}
{{- end -}}

{{- define "mishards.containerSecurityContext" -}}
{{- if not (include "mishards.podSecurityException" .) -}}
securityContext:
  runAsNonRoot: true
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: {{ not .writableRootFilesystem }}
  capabilities:
    drop: [ALL]
{{- end -}}
{{- end -}}

{{/* The pod annotations of Prometheus's kubernetes_sd convention (prometheus.io/scrape, port, path). */}}
{{- define "mishards.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* The Secret holding MISHARDS_INTERNAL_TOKEN and ROOT_PASSWORD (the user's, or the chart's). */}}
{{- define "mishards.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "mishards.fullname" .)) -}}
{{- end -}}

{{/* The Secret holding MILVUS_BACKEND_TOKEN (the user's, or the chart's); empty when there is no token. */}}
{{- define "mishards.backendSecret" -}}
{{- if .Values.backendAuth.existingSecret -}}
{{- .Values.backendAuth.existingSecret -}}
{{- else if .Values.backendAuth.token -}}
{{- printf "%s-backend" (include "mishards.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment of every Mishards container: the log folder, where metrics listen, the secrets, TLS files. */}}
{{- define "mishards.commonEnv" -}}
- name: LOG_PATH
  value: /var/log/mishards
# In the pod network, so that Prometheus can scrape; the router's Service does not publish it.
- name: METRICS_HOST
  value: 0.0.0.0
- name: MISHARDS_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mishards.authSecret" . }}
      key: {{ ternary .Values.auth.internalTokenKey "internal-token" (ne .Values.auth.existingSecret "") }}
{{- with include "mishards.backendSecret" . }}
- name: MILVUS_BACKEND_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ ternary $.Values.backendAuth.key "token" (ne $.Values.backendAuth.existingSecret "") }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: TLS_CERT_FILE
  value: /etc/mishards/tls/tls.crt
- name: TLS_KEY_FILE
  value: /etc/mishards/tls/tls.key
- name: TLS_CA_FILE
  value: /etc/mishards/tls/ca.crt
{{- if .Values.tls.mutual }}
- name: TLS_CLIENT_CA_FILE
  value: /etc/mishards/tls/ca.crt
{{- end }}
{{- with .Values.tls.serverName }}
- name: TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.tls.backendCaSecret }}
- name: MILVUS_BACKEND_TLS_CA_FILE
  value: /etc/mishards/backend-tls/ca.crt
{{- end }}
{{- end -}}

{{/* Volume mounts of the TLS Secrets (after the logs mount). */}}
{{- define "mishards.tlsMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/mishards/tls
  readOnly: true
{{- end }}
{{- if .Values.tls.backendCaSecret }}
- name: backend-tls
  mountPath: /etc/mishards/backend-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "mishards.tlsVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ .Values.tls.existingSecret }}
{{- end }}
{{- if .Values.tls.backendCaSecret }}
- name: backend-tls
  secret:
    secretName: {{ .Values.tls.backendCaSecret }}
{{- end }}
{{- end -}}

{{/* startup, readiness and liveness probes of one service: grpc health, or with TLS (which a
grpc: probe cannot speak) an exec of mishards-healthcheck. Argument: dict root, script, port, startupFailures. */}}
{{- define "mishards.probes" -}}
{{- $check := dict "grpc" (dict "port" .port) -}}
{{- if .root.Values.tls.enabled -}}
{{- $check = dict "exec" (dict "command" (list "python" "/opt/mishards/bin/mishards-healthcheck" .script)) -}}
{{- end -}}
startupProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 5
  failureThreshold: {{ .startupFailures }}
readinessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 5
  {{- if .root.Values.tls.enabled }}
  timeoutSeconds: 5
  {{- end }}
livenessProbe:
  {{- toYaml $check | nindent 2 }}
  periodSeconds: 20
  failureThreshold: 3
  {{- if .root.Values.tls.enabled }}
  timeoutSeconds: 5
  {{- end }}
{{- end -}}

{{/* ROUTER_WORKERS: router.workers, or when 0 the router's CPU request rounded up ("500m" -> 1,
"1.5" -> 2, 3 -> 3; 1 without a request), at most 64. */}}
{{- define "mishards.routerWorkers" -}}
{{- $v := .Values.router -}}
{{- if $v.workers -}}
{{- $v.workers | int -}}
{{- else -}}
{{- $cpu := toString (dig "requests" "cpu" "" ($v.resources | default dict)) -}}
{{- $cores := 1.0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $cores = divf (trimSuffix "m" $cpu | float64) 1000 -}}
{{- else if $cpu -}}
{{- $cores = $cpu | float64 -}}
{{- end -}}
{{- minf 64 (maxf 1 (ceil $cores)) | int -}}
{{- end -}}
{{- end -}}
