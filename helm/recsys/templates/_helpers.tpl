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

{{- define "recsys.storeUrl" -}}
{{- if .Values.onlineStore.url -}}
{{ .Values.onlineStore.url }}
{{- else if .Values.redis.enabled -}}
redis://{{ include "recsys.name" . }}-redis:6379/0
{{- else -}}
{{ fail "onlineStore.url: required when redis.enabled is false" }}
{{- end -}}
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
  args:
    - --model_name={{ include "recsys.name" .root }}
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
    - --enable_latency_logging=false
    {{- range $v.predictor.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "recsys.env" .root | nindent 4 }}
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
{{- end -}}

{{/* The predictor component (spec.predictor or a canary's predictor). Same arguments. */}}
{{- define "recsys.predictorSpec" -}}
{{- $v := .root.Values -}}
minReplicas: {{ $v.predictor.minReplicas }}
maxReplicas: {{ $v.predictor.maxReplicas }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  {{- include "recsys.predictorContainer" . | nindent 2 }}
volumes:
  - name: work
    emptyDir: {}
{{- end -}}
