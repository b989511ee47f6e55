{{- define "vrelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vrelay.fullname" -}}
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

{{- define "vrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vrelay.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "vrelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "vrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vrelay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
vrelay.port: the port of a listen address that must be reachable from
outside the pod. Call with (list "what" "address").
*/}}
{{- define "vrelay.port" -}}
{{- $what := index . 0 }}
{{- $addr := toString (index . 1) }}
{{- $m := regexFind ":[^:]*$" $addr }}
{{- $port := trimPrefix ":" $m }}
{{- $host := trimSuffix $m $addr }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "%s is %q: the chart needs an address with a port, such as 0.0.0.0:8081" $what $addr) }}
{{- end }}
{{- if not (has $host (list "" "0.0.0.0" "[::]" "::")) }}
{{- fail (printf "%s is %q: in Kubernetes it must listen on every interface (0.0.0.0:%s) so that the kubelet and the Service reach it" $what $addr $port) }}
{{- end }}
{{- $port }}
{{- end }}

{{- define "vrelay.metricsPort" -}}
{{- $http := .Values.config.http | default dict }}
{{- include "vrelay.port" (list "config.http.listen" ($http.listen | default "127.0.0.1:8081")) }}
{{- end }}

{{/*
vrelay.webhooks: one "name port" line per webhook source.
*/}}
{{- define "vrelay.webhooks" -}}
{{- range $i, $s := .Values.config.sources | default list }}
{{- if eq (toString $s.type) "webhook" }}
{{- $wh := $s.webhook | default dict }}
{{- $what := printf "config.sources[%d].webhook.listen" $i }}
{{ printf "webhook-%d" $i }} {{ include "vrelay.port" (list $what ($wh.listen | default "127.0.0.1:8080")) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "vrelay.checks" -}}
{{- $nats := .Values.config.nats | default dict }}
{{- if $nats.embedded }}
{{- fail "config.nats.embedded: this chart runs vrelay against external NATS (config.nats.external); install NATS with the official chart and deploy/nats-values.yaml" }}
{{- end }}
{{- if not $nats.external }}
{{- fail "config.nats.external.url is required: this chart runs vrelay against external NATS" }}
{{- end }}
{{- end }}
