{{/* Names and labels shared by every template. */}}
{{- define "hub.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hub.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "hub.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hub.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The pod template of one hub process: component (api | projections | scoring), its values
(resources, extraEnv, apiKey: render the scoring worker's API key from Vault), its args. */}}
{{- define "hub.pod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "hub.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    checksum/settings: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    vault.hashicorp.com/agent-inject: "true"
    vault.hashicorp.com/role: {{ $root.Values.vault.role | quote }}
    vault.hashicorp.com/agent-inject-secret-hub.yaml: {{ $root.Values.vault.secretPath | quote }}
    vault.hashicorp.com/agent-inject-template-hub.yaml: |
      {{- $root.Values.vault.configTemplate | nindent 6 }}
    vault.hashicorp.com/agent-inject-secret-metrics_token: {{ $root.Values.vault.secretPath | quote }}
    vault.hashicorp.com/agent-inject-template-metrics_token: |
      {{- $root.Values.vault.metricsTokenTemplate | nindent 6 }}
    {{- if .values.apiKey }}
    vault.hashicorp.com/agent-inject-secret-scoring_key: {{ $root.Values.vault.secretPath | quote }}
    vault.hashicorp.com/agent-inject-template-scoring_key: |
      {{- $root.Values.vault.scoringKeyTemplate | nindent 6 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "hub.fullname" $root }}
  automountServiceAccountToken: true
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: hub
      image: {{ include "hub.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "hub.fullname" $root }}
      env:
        - name: HUB_CONFIG_FILE
          value: /vault/secrets/hub.yaml
        - name: HUB_METRICS_TOKEN_FILE
          value: /vault/secrets/metrics_token
        {{- range $name, $value := .values.extraEnv }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
      startupProbe:
        httpGet: {path: {{ $root.Values.probes.startup.path }}, port: http}
        periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet: {path: {{ $root.Values.probes.liveness.path }}, port: http}
        periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
      readinessProbe:
        httpGet: {path: {{ $root.Values.probes.readiness.path }}, port: http}
        periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - {name: data, mountPath: /var/lib/hub}
        - {name: tmp, mountPath: /tmp}
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: {{ include "hub.fullname" $root }}-data
    - name: tmp
      emptyDir: {sizeLimit: 1Gi}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
