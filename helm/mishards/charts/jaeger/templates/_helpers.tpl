{{- define "jaeger.fullname" -}}
{{- printf "%s-jaeger" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jaeger.selectorLabels" -}}
app.kubernetes.io/name: jaeger
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jaeger.labels" -}}
{{ include "jaeger.selectorLabels" . }}
app.kubernetes.io/component: tracing
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mishards
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
