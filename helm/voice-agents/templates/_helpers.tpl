{{/*
Names and labels. Every resource carries the standard app.kubernetes.io labels; resources of one
agent add app.kubernetes.io/component=<agent>. Helpers that concern one agent take a dict:
(dict "root" $ "name" <agent name> "agent" <the agent's values>).
*/}}

{{/*
The enabled and disabled agents, each its agents.<name> block merged over agentDefaults, written
into the dict .out (name -> values): (dict "root" $ "out" $agents). Templates range over that
dict, never over .Values.agents.
*/}}
{{- define "voice-agents.agents" -}}
{{- range $name, $own := .root.Values.agents }}
{{- $agent := deepCopy ($.root.Values.agentDefaults | default dict) }}
{{- include "voice-agents.mergeInto" (dict "dst" $agent "src" ($own | default dict)) }}
{{- $_ := set $.out $name $agent }}
{{- end }}
{{- end }}

{{/*
Deep merge of .src into .dst, in place: maps merge, anything else replaces, and null removes the
key, so `--set agents.x.resources.requests=null` still drops a default (sprig's merge keeps it).
*/}}
{{- define "voice-agents.mergeInto" -}}
{{- $dst := .dst }}
{{- range $key, $value := .src }}
{{- if kindIs "invalid" $value }}
{{- $_ := unset $dst $key }}
{{- else if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) }}
{{- include "voice-agents.mergeInto" (dict "dst" (get $dst $key) "src" $value) }}
{{- else }}
{{- $_ := set $dst $key $value }}
{{- end }}
{{- end }}
{{- end }}

{{- define "voice-agents.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart, or the release name alone when it already contains the chart name */}}
{{- define "voice-agents.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "voice-agents.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of one agent's resources: <fullname>-<agent> */}}
{{- define "voice-agents.agentFullname" -}}
{{- printf "%s-%s" (include "voice-agents.fullname" .root | trunc 45 | trimSuffix "-") .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voice-agents.selectorLabels" -}}
app.kubernetes.io/name: {{ include "voice-agents.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "voice-agents.labels" -}}
helm.sh/chart: {{ include "voice-agents.chart" . }}
{{ include "voice-agents.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: voice-agents
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "voice-agents.agentSelectorLabels" -}}
{{ include "voice-agents.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "voice-agents.agentLabels" -}}
{{ include "voice-agents.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "voice-agents.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voice-agents.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the agents read their keys from: the existing one, or the chart's own. */}}
{{- define "voice-agents.secretName" -}}
{{- default (include "voice-agents.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* True (non-empty) when the chart creates the Secret: no existingSecret, values given. */}}
{{- define "voice-agents.createSecret" -}}
{{- if and (not .Values.secret.existingSecret) (include "voice-agents.secretValues" . | fromYaml) }}true{{ end }}
{{- end }}

{{/* The non-empty secret.values, as YAML */}}
{{- define "voice-agents.secretValues" -}}
{{- range $k, $v := .Values.secret.values }}
{{- if $v }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* registry/repository:tag@digest; the tag defaults to the chart's appVersion */}}
{{- define "voice-agents.image" -}}
{{- $image := .agent.image }}
{{- $ref := $image.repository }}
{{- with .root.Values.imageRegistry }}{{ $ref = printf "%s/%s" . $ref }}{{ end }}
{{- $ref = printf "%s:%s" $ref (default .root.Chart.AppVersion $image.tag | toString) }}
{{- with $image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
terminationGracePeriodSeconds: LiveKit drains running calls for drainTimeoutSeconds after SIGTERM,
so the kubelet must wait longer than that before SIGKILL. Unset: drain + 60 s, at least 600 s
(LiveKit's guidance). Set explicitly: it must exceed the drain timeout.
*/}}
{{- define "voice-agents.terminationGracePeriodSeconds" -}}
{{- $drain := int .agent.drainTimeoutSeconds }}
{{- if kindIs "invalid" .agent.terminationGracePeriodSeconds }}
{{- max 600 (add $drain 60) }}
{{- else }}
{{- $grace := int .agent.terminationGracePeriodSeconds }}
{{- if le $grace $drain }}
{{- fail (printf "agents.%s.terminationGracePeriodSeconds (%d) must be greater than agents.%s.drainTimeoutSeconds (%d): the kubelet kills the pod when the grace period ends, cutting calls that are still draining. Leave it unset to use drain + 60." .name $grace .name $drain) }}
{{- end }}
{{- $grace }}
{{- end }}
{{- end }}

{{/* Monitoring objects need the Prometheus Operator's CRDs in the cluster. */}}
{{- define "voice-agents.hasPrometheusOperator" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* Dashboard file name -> a DNS-1123 name part */}}
{{- define "voice-agents.dashboardSlug" -}}
{{- base . | trimSuffix ".json" | lower | regexReplaceAll "[^a-z0-9-]+" "-" | trimAll "-" }}
{{- end }}

{{/*
Scaling checks of one agent (merged values, so agentDefaults and agents.<name> together): min
not above max, and one autoscaler only (values.schema.json refuses both switches in one block).
*/}}
{{- define "voice-agents.checkScaling" -}}
{{- $as := .agent.autoscaling }}
{{- if gt (int $as.minReplicas) (int $as.maxReplicas) }}
{{- fail (printf "agents.%s.autoscaling.minReplicas (%d) must not exceed agents.%s.autoscaling.maxReplicas (%d)" .name (int $as.minReplicas) .name (int $as.maxReplicas)) }}
{{- end }}
{{- if and $as.enabled $as.keda.enabled }}
{{- fail (printf "agents.%s: autoscaling.enabled (CPU HPA) and autoscaling.keda.enabled (KEDA) are exclusive; switch one off" .name) }}
{{- end }}
{{- end }}

{{/*
Scale-up and scale-down of the CPU HPA and of the HPA KEDA creates (takes .agent.autoscaling).
Scaling down sends SIGTERM to a pod, which then drains its calls for up to drainTimeoutSeconds:
the long stabilization window and one-pod-at-a-time policy avoid flapping.
*/}}
{{- define "voice-agents.scalingBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Pods
      value: 2
      periodSeconds: 60
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDownStabilizationWindowSeconds }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 300
{{- end }}

{{/* The name one agent registers with for dispatch (its AGENT_NAME): agentName, else its own. */}}
{{- define "voice-agents.dispatchName" -}}
{{- .agent.agentName | default .name }}
{{- end }}

{{/*
WEB_AGENTS of the web client: the dispatch names of the enabled agents, comma-separated, each
once (two agents registered under one name are one choice for a dispatch). Never empty: the web
client would then offer every agent under its own name.
*/}}
{{- define "voice-agents.webAgents" -}}
{{- $agents := dict }}
{{- include "voice-agents.agents" (dict "root" . "out" $agents) }}
{{- $names := list }}
{{- range $name, $agent := $agents }}
{{- if $agent.enabled }}
{{- $names = append $names (include "voice-agents.dispatchName" (dict "name" $name "agent" $agent)) }}
{{- end }}
{{- end }}
{{- if not $names }}
{{- fail "web.enabled needs at least one enabled agent (agents.<name>.enabled): the page would offer agents no worker serves" }}
{{- end }}
{{- $names | uniq | join "," }}
{{- end }}

{{/* Whether any enabled agent keeps its pod deletion cost (it then needs the Role). */}}
{{- define "voice-agents.podDeletionCost" -}}
{{- $agents := dict }}
{{- include "voice-agents.agents" (dict "root" . "out" $agents) }}
{{- range $name, $agent := $agents }}
{{- if and $agent.enabled $agent.autoscaling.podDeletionCost }}true{{ end }}
{{- end }}
{{- end }}
