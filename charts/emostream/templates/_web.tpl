{{/*
The two HTTP tiers, ingest and fanout, share one shape: a Deployment of gunicorn pods behind a
public Service, with probes, a preStop pause, a PodDisruptionBudget, a ServiceAccount, an
optional Ingress and a NetworkPolicy. /metrics is served on a second port, the named container
port `metrics` (<component>.metrics.port), which only a headless metrics Service names, for the
ServiceMonitors; no public Service port or Ingress reaches it. Each template below takes
(dict "root" $ "component" "ingest" "port" 8000).
*/}}

{{- define "emostream.web.deployment" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "emostream.componentName" $ctx }}
  labels:
    {{- include "emostream.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (include "emostream.autoscaled" $root) }}
  replicas: {{ $c.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "emostream.componentSelectorLabels" $ctx | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Never below the current capacity while a new version starts.
      maxUnavailable: 0
      maxSurge: 25%
  template:
    metadata:
      labels:
        {{- include "emostream.componentSelectorLabels" $ctx | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "emostream.configChecksum" $ctx }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "emostream.serviceAccountName" (dict "root" $root "component" .component "sa" $c.serviceAccount) }}
      # The tier never calls the Kubernetes API.
      automountServiceAccountToken: false
      {{- include "emostream.imagePullSecrets" (dict "root" $root "indent" 6) }}
      {{- include "emostream.podSecurityContext" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      {{- with include "emostream.scheduling" $c | trim }}{{ . | nindent 6 }}{{- end }}
      {{- if not $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "emostream.componentSelectorLabels" $ctx | nindent 14 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "emostream.image" (dict "root" $root "image" $c.image) | quote }}
          imagePullPolicy: {{ include "emostream.pullPolicy" (dict "root" $root "image" $c.image) }}
          ports:
            # The public API / feeds.
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
            # /metrics only (EMOSTREAM_METRICS_PORT); the public port answers it 404.
            - name: metrics
              containerPort: {{ $c.metrics.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "emostream.componentName" $ctx }}
          env:
            {{- include "emostream.connectionEnv" $ctx | nindent 12 }}
            {{- include "emostream.accessEnv" $ctx | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $c.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $c.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $c.probes.readiness | nindent 12 }}
          lifecycle:
            preStop:
              # Keep serving while endpoints and load balancers drop the pod, then SIGTERM.
              sleep:
                seconds: {{ $c.preStopSleepSeconds }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          {{- include "emostream.containerSecurityContext" $root | nindent 10 }}
          volumeMounts:
            # gunicorn's worker heartbeat files and the metrics of every worker (memory-backed).
            - name: tmp
              mountPath: /tmp
            {{- with include "emostream.kafkaVolumeMount" $root }}{{ . | nindent 12 }}{{- end }}
      volumes:
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 64Mi
        {{- with include "emostream.kafkaVolume" $root }}{{ . | nindent 8 }}{{- end }}
{{- end -}}

{{- define "emostream.web.service" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "emostream.componentName" $ctx }}
  labels:
    {{- include "emostream.componentLabels" $ctx | nindent 4 }}
  {{- with $c.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.service.type }}
  selector:
    {{- include "emostream.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    # The public port only: /metrics is on the metrics Service below.
    - name: http
      port: {{ $c.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{- /*
The tier's metrics Service, <fullname>-<component>-metrics: headless (no virtual IP; Prometheus
scrapes each pod), never exposed, selected by the tier's ServiceMonitor through its component
label <component>-metrics. It lists pods that are not ready too: a pod that cannot reach Kafka
is when its metrics matter.
*/}}
{{- define "emostream.web.metricsService" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- $metrics := dict "root" $root "component" (include "emostream.metricsServiceComponent" $ctx) -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "emostream.componentName" $metrics }}
  labels:
    {{- include "emostream.componentLabels" $metrics | nindent 4 }}
spec:
  type: ClusterIP
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "emostream.componentSelectorLabels" $ctx | nindent 4 }}
  ports:
    - name: metrics
      port: {{ $c.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end -}}

{{- define "emostream.web.pdb" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- if $c.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "emostream.componentName" $ctx }}
  labels:
    {{- include "emostream.componentLabels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $c.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "emostream.componentSelectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "emostream.serviceAccount" -}}
{{- $root := .root -}}
{{- if .sa.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "emostream.serviceAccountName" . }}
  labels:
    {{- include "emostream.componentLabels" (dict "root" $root "component" .component) | nindent 4 }}
  {{- with .sa.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ default false .automount }}
{{- end }}
{{- end -}}

{{- define "emostream.web.ingress" -}}
{{- $root := .root -}}
{{- $c := index $root.Values .component -}}
{{- $ctx := dict "root" $root "component" .component -}}
{{- if $c.ingress.enabled }}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "emostream.componentName" $ctx }}
  labels:
    {{- include "emostream.componentLabels" $ctx | nindent 4 }}
  {{- with $c.ingress.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $c.ingress.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- with $c.ingress.tls }}
  tls:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  rules:
    {{- range $c.ingress.hosts }}
    - host: {{ .host | quote }}
      http:
        paths:
          {{- range .paths }}
          - path: {{ .path }}
            pathType: {{ .pathType }}
            backend:
              service:
                name: {{ include "emostream.componentName" $ctx }}
                port:
                  name: http
          {{- end }}
    {{- end }}
{{- end }}
{{- end -}}
