{{/* The release's object name prefix: the release name, or <release>-lbctl when it lacks "lbctl". */}}
{{- define "lbctl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lbctl.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lbctl.labels" -}}
{{ include "lbctl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "lbctl.secretName" -}}
{{- .Values.netscaler.existingSecret | default (printf "%s-netscaler" (include "lbctl.fullname" .)) -}}
{{- end -}}

{{- define "lbctl.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "lbctl.checks" -}}
{{- if and (not .Values.leaderElection.enabled) (gt (int .Values.replicas) 1) -}}
{{- fail "replicas > 1 needs leaderElection.enabled: without it every replica would reconcile" -}}
{{- end -}}
{{- if and .Values.netscaler.existingSecret (or .Values.netscaler.username .Values.netscaler.password) -}}
{{- fail "netscaler: set existingSecret or username/password, not both" -}}
{{- end -}}
{{- if ne (empty .Values.netscaler.username) (empty .Values.netscaler.password) -}}
{{- fail "netscaler: username and password are set together" -}}
{{- end -}}
{{- end -}}

{{/* The rules on namespaced resources: in the ClusterRole, or with watchNamespace in a Role there. */}}
{{- define "lbctl.namespacedRules" -}}
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch"]
# Finalizer, annotation and status are all written through the status subresource, which
# applies metadata and status but never the spec.
- apiGroups: [""]
  resources: ["services/status"]
  verbs: ["patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
# get: a restarted lbctl (or the other replica) reporting the same thing finds its Event
# by name and raises its count.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "get", "patch"]
- apiGroups: ["ipam.citrix.com"]
  resources: ["vips"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end -}}

{{/* What lbctl reads only at start (not the password: no hash of it in the pod's metadata). */}}
{{- define "lbctl.netscalerChecksum" -}}
{{- list .Values.netscaler.url .Values.netscaler.appsNamePrefix (include "lbctl.secretName" .) .Values.netscaler.username | toJson | sha256sum | trunc 16 | quote -}}
{{- end -}}
