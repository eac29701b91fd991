{{/* The release's full name: the release name, with the chart's name unless it already holds it. */}}
{{- define "kubechain-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubechain-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubechain-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name an existing service account when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubechain-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubechain-operator.labels" -}}
{{ include "kubechain-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubechain-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Namespaced mode needs the namespaces it is to watch. */}}
{{- define "kubechain-operator.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- if not .Values.rbac.watchNamespaces -}}
{{- fail "rbac.watchNamespaces: list the namespaces to watch when rbac.scope is namespaced" -}}
{{- end -}}
{{- join "," .Values.rbac.watchNamespaces -}}
{{- end -}}
{{- end -}}

{{/* What the operator does with the objects of a chain, in every namespace it watches. */}}
{{- define "kubechain-operator.chainRules" -}}
- apiGroups: [kubechain.dev]
  resources: [blockchains]
  verbs: [get, list, watch, patch, update]
- apiGroups: [kubechain.dev]
  resources: [blockchains/status, blockchains/finalizers]
  verbs: [get, patch, update]
# Key Secrets are created once and read back, member clusters' kubeconfig Secrets read; never
# listed or watched, so no key sits in the operator's memory longer than a reconcile.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
# A validator removed from the set on chain loses its Service and StatefulSet.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# A new chain does not start over volume claims a deleted chain of its name left.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
# Validators restart one at a time to take a changed pod template (the StatefulSets are OnDelete).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, delete]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, create, patch, delete]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
