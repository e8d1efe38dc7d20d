{{/* Names. With the release named "quiver" every name is the binaries' default. */}}
{{- define "quiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quiver.fullname" -}}
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

{{/* Component names are kept to 52 characters so that pod and claim names stay valid. */}}
{{- define "quiver.tenant.fullname" -}}
{{- printf "%s-tenant" (include "quiver.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}
{{- define "quiver.router.fullname" -}}
{{- printf "%s-router" (include "quiver.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}
{{- define "quiver.operator.fullname" -}}
{{- printf "%s-operator" (include "quiver.fullname" . | trunc 43 | trimSuffix "-") -}}
{{- end -}}
{{- define "quiver.placement.configmap" -}}
{{- printf "%s-placement" (include "quiver.fullname" . | trunc 42 | trimSuffix "-") -}}
{{- end -}}
{{- define "quiver.operator.lease" -}}
{{- include "quiver.operator.fullname" . -}}
{{- end -}}
{{- define "quiver.adminToken.secret" -}}
{{- default (printf "%s-admin-token" (include "quiver.fullname" . | trunc 40 | trimSuffix "-")) .Values.auth.adminToken.existingSecret -}}
{{- end -}}
{{- define "quiver.operator.serviceAccount" -}}
{{- default (include "quiver.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- define "quiver.router.serviceAccount" -}}
{{- default (include "quiver.router.fullname" .) .Values.router.serviceAccount.name -}}
{{- end -}}

{{- define "quiver.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The router Service's URL, unless router.endpoint says otherwise. */}}
{{- define "quiver.router.endpoint" -}}
{{- if .Values.router.endpoint -}}
{{- .Values.router.endpoint -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "quiver.router.fullname" .) .Release.Namespace (int .Values.router.service.port) -}}
{{- end -}}
{{- end -}}

{{/* The base URL of tenant shard $ordinal, as the operator builds it
     (http://{statefulset}-{i}.{service}.{namespace}.svc:{port}). */}}
{{- define "quiver.tenant.shardUrl" -}}
{{- $ctx := index . 0 -}}
{{- $ordinal := index . 1 -}}
{{- $sts := include "quiver.tenant.fullname" $ctx -}}
{{- printf "http://%s-%d.%s.%s.svc:%d" $sts (int $ordinal) $sts $ctx.Release.Namespace (int $ctx.Values.tenant.port) -}}
{{- end -}}

{{/* Labels. quiver.labels for objects of the whole release, quiver.componentLabels
     (list $ "router") for one component's; selector labels never change across upgrades. */}}
{{- define "quiver.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quiver
{{- end -}}

{{- define "quiver.labels" -}}
{{ include "quiver.metaLabels" . }}
app.kubernetes.io/name: {{ include "quiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quiver.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "quiver.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "quiver.componentLabels" -}}
{{ include "quiver.metaLabels" (index . 0) }}
{{ include "quiver.selectorLabels" . }}
{{- end -}}

{{/* The CORS origins as the binaries' --cors-origins takes them (a JSON list). */}}
{{- define "quiver.corsOrigins" -}}
{{- .Values.cors.origins | toJson -}}
{{- end -}}

{{/* Environment shared by every container: logs, traces, the pod's identity. */}}
{{- define "quiver.commonEnv" -}}
- name: RUST_LOG
  value: {{ .Values.logging.level | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.namespace.name=$(POD_NAMESPACE),k8s.pod.name=$(POD_NAME)%s" (ternary (printf ",%s" .resourceAttributes) "" (ne .resourceAttributes "")) | quote }}
{{- if .headersSecret.name }}
- name: OTEL_EXPORTER_OTLP_HEADERS
  valueFrom:
    secretKeyRef:
      name: {{ .headersSecret.name | quote }}
      key: {{ .headersSecret.key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The admin token, for the tenant servers and the operator. */}}
{{- define "quiver.adminTokenEnv" -}}
{{- if .Values.auth.adminToken.enabled -}}
- name: QUIVER_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "quiver.adminToken.secret" . | quote }}
      key: {{ .Values.auth.adminToken.secretKey | quote }}
{{- end }}
{{- end -}}

{{/* A pod's annotations: (list $ <metrics port> <user annotations>); Prometheus scrape
     annotations when metrics.podAnnotations is on. Renders "annotations: ..." or nothing. */}}
{{- define "quiver.podAnnotations" -}}
{{- $ctx := index . 0 -}}
{{- $annotations := dict -}}
{{- if $ctx.Values.metrics.podAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (index . 1 | int | toString) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- $annotations = merge (deepCopy (index . 2 | default dict)) $annotations -}}
{{- with $annotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* Hardened security contexts (the image runs as uid 65532). */}}
{{- define "quiver.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "quiver.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* Checks across values that the schema cannot express. */}}
{{- define "quiver.validate" -}}
{{- if gt (int .Values.shards.min) (int .Values.shards.max) -}}
{{- fail (printf "shards.min (%d) must not be above shards.max (%d)" (int .Values.shards.min) (int .Values.shards.max)) -}}
{{- end -}}
{{- if and .Values.router.ingress.enabled (not .Values.router.ingress.hosts) -}}
{{- fail "router.ingress.enabled needs at least one entry in router.ingress.hosts" -}}
{{- end -}}
{{- end -}}
