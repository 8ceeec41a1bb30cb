{{/* Name of this set's objects: <release>-<alias>, e.g. mishards-wo. */}}
{{- define "milvus.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "milvus.headlessName" -}}
{{- printf "%s-headless" (include "milvus.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* name + instance, plus component to tell wo from ro: two StatefulSets of one release. */}}
{{- define "milvus.selectorLabels" -}}
app.kubernetes.io/name: milvus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Chart.Name }}
{{- end -}}

{{- define "milvus.labels" -}}
{{ include "milvus.selectorLabels" . }}
app.kubernetes.io/version: {{ include "milvus.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mishards
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
mishards.io/role: {{ .Values.role }}
{{- end -}}

{{- define "milvus.gpuEnabled" -}}
{{- if or .Values.gpu.enabled (and .Values.global .Values.global.gpu .Values.global.gpu.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "milvus.imageTag" -}}
{{- if include "milvus.gpuEnabled" . -}}{{ printf "%s-gpu" (.Values.image.tag | trimSuffix "-gpu") }}{{- else -}}{{ .Values.image.tag }}{{- end -}}
{{- end -}}

{{- define "milvus.image" -}}
{{- $registry := .Values.image.registry -}}
{{- if and .Values.global .Values.global.imageRegistry -}}{{- $registry = .Values.global.imageRegistry -}}{{- end -}}
{{- if $registry -}}{{ printf "%s/%s:%s" $registry .Values.image.repository (include "milvus.imageTag" .) }}{{- else -}}{{ printf "%s:%s" .Values.image.repository (include "milvus.imageTag" .) }}{{- end -}}
{{- end -}}

{{/* Milvus user.yaml: standalone with embedded etcd and local storage, plus extraConfig. */}}
{{- define "milvus.userConfig" -}}
{{- $base := dict "etcd" (dict "use" (dict "embed" true) "data" (dict "dir" "/var/lib/milvus/etcd")) "common" (dict "storageType" "local") "localStorage" (dict "path" "/var/lib/milvus/data") -}}
{{- toYaml (mustMergeOverwrite $base (deepCopy .Values.extraConfig)) -}}
{{- end -}}
