{{/* The InferenceService's name, also the model name both servers answer to. */}}
{{- define "recsys.name" -}}
{{- default .Release.Name .Values.nameOverride | trunc 45 | trimSuffix "-" -}}
{{- end -}}

{{- define "recsys.labels" -}}
app.kubernetes.io/name: recsys
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "recsys.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* The Secret every credential comes from, as environment (never a command line). */}}
{{- define "recsys.secretName" -}}
{{- default (printf "%s-credentials" (include "recsys.name" .)) .Values.credentials.secretName -}}
{{- end -}}

{{- define "recsys.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef: {name: {{ include "recsys.secretName" .root }}, key: {{ .key }}}
{{- end -}}

{{/* RECSYS_ONLINE_STORE: a plain onlineStore.url, else the Secret's online-store-url (it holds
the chart's Redis's password). */}}
{{- define "recsys.storeEnv" -}}
{{- if .Values.onlineStore.url -}}
- name: RECSYS_ONLINE_STORE
  value: {{ .Values.onlineStore.url | quote }}
{{- else if .Values.redis.enabled -}}
{{ include "recsys.secretEnv" (dict "root" . "env" "RECSYS_ONLINE_STORE" "key" "online-store-url") }}
{{- else -}}
{{ fail "onlineStore.url: required when redis.enabled is false" }}
{{- end -}}
{{- end -}}

{{/* The edge of both servers (inference/auth.py): RECSYS_AUTH_*. Argument: dict root, role. */}}
{{- define "recsys.authEnv" -}}
{{- $root := .root -}}
{{- $v := .root.Values -}}
{{- $a := $v.auth -}}
- name: RECSYS_AUTH_ENABLED
  value: {{ $a.enabled | quote }}
{{- if $a.enabled }}
{{ include "recsys.secretEnv" (dict "root" .root "env" "RECSYS_AUTH_PREDICTOR_KEY" "key" "predictor-key") }}
{{ include "recsys.secretEnv" (dict "root" .root "env" "RECSYS_AUTH_ADMIN_KEYS" "key" "admin-keys") }}
{{- if eq .role "transformer" }}
{{ include "recsys.secretEnv" (dict "root" .root "env" "RECSYS_AUTH_API_KEYS" "key" "api-keys") }}
{{- else }}
# a predictor's only client: the transformer, with the key it is given above
- name: RECSYS_AUTH_API_KEYS
  value: transformer=$(RECSYS_AUTH_PREDICTOR_KEY)
{{- end }}
{{- with $a.jwt.algorithm }}
- name: RECSYS_AUTH_JWT_ALGORITHM
  value: {{ . | quote }}
{{- if eq . "HS256" }}
{{ include "recsys.secretEnv" (dict "root" $root "env" "RECSYS_AUTH_JWT_SECRET" "key" "jwt-secret") }}
{{- else }}
- name: RECSYS_AUTH_JWKS_FILE
  value: /etc/recsys/jwks/jwks.json
{{- end }}
{{- end }}
{{- with $a.jwt.audience }}
- name: RECSYS_AUTH_JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $a.jwt.issuer }}
- name: RECSYS_AUTH_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
- name: RECSYS_AUTH_ADMIN_SCOPE
  value: {{ $a.jwt.adminScope | quote }}
{{- end }}
- name: RECSYS_AUTH_RATE_LIMIT_PER_S
  value: {{ $a.rateLimit.perSecond | quote }}
- name: RECSYS_AUTH_RATE_LIMIT_BURST
  value: {{ $a.rateLimit.burst | quote }}
{{- end -}}

{{/* Both servers' limits (values.serving), as flags of inference/settings.py. */}}
{{- define "recsys.servingArgs" -}}
{{- $s := .Values.serving -}}
- --max_request_bytes={{ int64 $s.maxRequestBytes }}
- --body_timeout_s={{ $s.bodyTimeoutSeconds }}
- --header_timeout_s={{ $s.headerTimeoutSeconds }}
- --max_connections={{ $s.maxConnections }}
- --request_logs={{ $s.requestLogs }}
{{- end -}}

{{/* Pod and container security: a numeric non-root user, nothing written outside volumes. */}}
{{- define "recsys.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "recsys.containerSecurity" -}}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The MLflow tracking server: the release's own when mlflow.enabled. */}}
{{- define "recsys.trackingUri" -}}
{{- if .Values.mlflow.enabled -}}
http://{{ include "recsys.name" . }}-mlflow.{{ .Release.Namespace }}.svc.cluster.local:5000
{{- else -}}
{{ .Values.model.registry.trackingUri }}
{{- end -}}
{{- end -}}

{{/* Environment both servers share: the registry they resolve aliases in. */}}
{{- define "recsys.env" -}}
- name: MLFLOW_TRACKING_URI
  value: {{ include "recsys.trackingUri" . | quote }}
- name: RECSYS_MODEL_NAME
  value: {{ .Values.model.registry.name | quote }}
- name: RECSYS_DATA_DIR
  value: /var/lib/recsys
{{- end -}}

{{/*
A predictor container serving one bundle. Arguments: a dict with "root" (the chart's context),
"alias" (the registry alias) and "storageUri" (wins when set).
*/}}
{{- define "recsys.predictorContainer" -}}
{{- $v := .root.Values -}}
- name: kserve-container
  image: {{ include "recsys.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  command: ["python", "-m", "inference.predictor_main"]
  securityContext:
    {{- include "recsys.containerSecurity" .root | nindent 4 }}
  args:
    - --model_name={{ include "recsys.name" .root }}
    - --bind_host=0.0.0.0
    - --http_port=8080
    - --grpc_port=8081
    {{- if .storageUri }}
    - --model_uri=/mnt/models
    {{- else }}
    - --model_uri=models:/{{ $v.model.registry.name }}@{{ .alias }}
    - --poll_seconds={{ $v.model.registry.pollSeconds }}
    {{- end }}
    - --runtime={{ $v.model.runtime }}
    - --scoring_threads={{ $v.predictor.scoringThreads }}
    {{- include "recsys.servingArgs" .root | nindent 4 }}
    - --enable_latency_logging=false
    {{- range $v.predictor.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "recsys.env" .root | nindent 4 }}
    {{- include "recsys.authEnv" (dict "root" .root "role" "predictor") | nindent 4 }}
    {{- if .storageUri }}
    - name: STORAGE_URI
      value: {{ .storageUri | quote }}
    {{- end }}
    {{- with $v.predictor.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http1
      containerPort: 8080
      protocol: TCP
  readinessProbe:
    httpGet: {path: /v2/health/ready, port: 8080}
    periodSeconds: 5
  resources:
    {{- toYaml $v.predictor.resources | nindent 4 }}
  volumeMounts:
    - {name: work, mountPath: /var/lib/recsys}
    - {name: tmp, mountPath: /tmp}
    {{- if eq $v.auth.jwt.algorithm "RS256" }}
    - {name: jwks, mountPath: /etc/recsys/jwks, readOnly: true}
    {{- end }}
{{- end -}}

{{/* The predictor component (spec.predictor or a canary's predictor). Same arguments. */}}
{{- define "recsys.predictorSpec" -}}
{{- $v := .root.Values -}}
minReplicas: {{ $v.predictor.minReplicas }}
maxReplicas: {{ $v.predictor.maxReplicas }}
# the NetworkPolicies select serving pods by these
labels:
  app.kubernetes.io/instance: {{ .root.Release.Name }}
  recsys.io/role: predictor
securityContext:
  {{- include "recsys.podSecurity" .root | nindent 2 }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  {{- include "recsys.predictorContainer" . | nindent 2 }}
volumes:
  - name: work
    emptyDir: {}
  - name: tmp
    emptyDir: {}
  {{- include "recsys.jwksVolume" .root | nindent 2 }}
{{- end -}}

{{- define "recsys.jwksVolume" -}}
{{- if eq .Values.auth.jwt.algorithm "RS256" }}
- name: jwks
  configMap:
    name: {{ required "auth.jwt.jwksConfigMap: required for RS256 (a ConfigMap with key jwks.json)" .Values.auth.jwt.jwksConfigMap }}
{{- end }}
{{- end -}}
