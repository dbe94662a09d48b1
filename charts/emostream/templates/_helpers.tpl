{{/*
Names, labels and shared pieces of every Emostream object.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "emostream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's base name for objects: fullnameOverride, else <release>-<chart> (just <release>
when it already contains the chart name). Kept to 40 characters so that
"<fullname>-<component>-<suffix>" names stay within Kubernetes' 63.
*/}}
{{- define "emostream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* chart label value: <name>-<version>. */}}
{{- define "emostream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the release's pods; never change them after install. */}}
{{- define "emostream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "emostream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "emostream.labels" -}}
helm.sh/chart: {{ include "emostream.chart" . }}
{{ include "emostream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: emostream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Per-component names and labels. Call with (dict "root" $ "component" "ingest").
*/}}
{{- define "emostream.componentName" -}}
{{- printf "%s-%s" (include "emostream.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "emostream.componentSelectorLabels" -}}
{{ include "emostream.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "emostream.componentLabels" -}}
{{ include "emostream.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
An image reference. Call with (dict "root" $ "image" .Values.ingest.image): the component's
repository and optional tag/registry, falling back to .Values.image (registry, tag) and the
chart's appVersion.
*/}}
{{- define "emostream.image" -}}
{{- $registry := default .root.Values.image.registry .image.registry -}}
{{- $tag := default (default .root.Chart.AppVersion .root.Values.image.tag) .image.tag -}}
{{- $repository := .image.repository -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $repository ($tag | toString) -}}
{{- else -}}
{{- printf "%s:%s" $repository ($tag | toString) -}}
{{- end -}}
{{- end -}}

{{/* The pull policy of a component image (its own, else the shared one). */}}
{{- define "emostream.pullPolicy" -}}
{{- default .root.Values.image.pullPolicy .image.pullPolicy -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec, indented by "indent"; nothing when there are none. Call with (dict "root" $ "indent" 6). */}}
{{- define "emostream.imagePullSecrets" -}}
{{- with .root.Values.image.pullSecrets }}
{{- $list := list }}
{{- range . }}{{ $list = append $list (dict "name" .) }}{{ end }}
{{- dict "imagePullSecrets" $list | toYaml | nindent $.indent }}
{{- end }}
{{- end -}}

{{/* The ServiceAccount of a component. Call with (dict "root" $ "component" "ingest" "sa" .Values.ingest.serviceAccount). */}}
{{- define "emostream.serviceAccountName" -}}
{{- if .sa.create -}}
{{- default (include "emostream.componentName" .) .sa.name -}}
{{- else -}}
{{- default "default" .sa.name -}}
{{- end -}}
{{- end -}}

{{/* The Strimzi Kafka resource's name. */}}
{{- define "emostream.kafkaClusterName" -}}
{{- default (printf "%s-kafka" (include "emostream.fullname" .)) .Values.kafka.strimzi.clusterName -}}
{{- end -}}

{{/* Whether the Strimzi cluster has the TLS + SCRAM-SHA-512 listener and one KafkaUser per role. */}}
{{- define "emostream.strimziSecured" -}}
{{- if and (eq .Values.kafka.provider "strimzi") (eq .Values.kafka.strimzi.security "scram-tls") -}}true{{- end -}}
{{- end -}}

{{/*
How the Kafka clients connect, as JSON, decided once for the env, volume and port helpers:
  bootstrap    the bootstrap servers
  ports        the brokers' ports (egress NetworkPolicies)
  protocol     EMOSTREAM_KAFKA_SECURITY_PROTOCOL
  mechanism    the SASL mechanism ("" without SASL)
  credentials  where each role's user name and password come from: "kafkauser" (the role's
               KafkaUser and the Secret Strimzi makes for it), "secret" (kafka.external.existingSecret)
               or "" (no SASL)
  caSecret     the Secret whose key ca.crt holds the brokers' CA ("" trusts the system CAs)
*/}}
{{- define "emostream.kafkaConnection" -}}
{{- $k := .Values.kafka -}}
{{- $c := dict "protocol" "PLAINTEXT" "mechanism" "" "credentials" "" "caSecret" "" -}}
{{- if eq $k.provider "strimzi" -}}
{{- $cluster := include "emostream.kafkaClusterName" . -}}
{{- if include "emostream.strimziSecured" . -}}
{{- $_ := set $c "ports" (list 9093) -}}
{{- $_ := set $c "protocol" "SASL_SSL" -}}
{{- $_ := set $c "mechanism" "SCRAM-SHA-512" -}}
{{- $_ := set $c "credentials" "kafkauser" -}}
{{- /* Strimzi's cluster CA signs the brokers' certificates; this Secret holds its certificate. */ -}}
{{- $_ := set $c "caSecret" (printf "%s-cluster-ca-cert" $cluster) -}}
{{- else -}}
{{- $_ := set $c "ports" (list 9092) -}}
{{- end -}}
{{- $_ := set $c "bootstrap" (printf "%s-kafka-bootstrap.%s.svc:%d" $cluster .Release.Namespace (int (first $c.ports))) -}}
{{- else -}}
{{- $e := $k.external -}}
{{- $_ := set $c "bootstrap" $e.bootstrapServers -}}
{{- $_ := set $c "ports" $e.ports -}}
{{- $_ := set $c "protocol" $e.securityProtocol -}}
{{- if hasPrefix "SASL_" $e.securityProtocol -}}
{{- $_ := set $c "mechanism" $e.saslMechanism -}}
{{- $_ := set $c "credentials" "secret" -}}
{{- end -}}
{{- if and (hasSuffix "SSL" $e.securityProtocol) $e.existingSecret $e.caFromSecret -}}
{{- $_ := set $c "caSecret" $e.existingSecret -}}
{{- end -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{/* The Kafka ports egress NetworkPolicies allow: the listener the clients use. */}}
{{- define "emostream.kafkaPorts" -}}
{{- (include "emostream.kafkaConnection" . | fromJson).ports | toJson -}}
{{- end -}}

{{/* Where the brokers' CA certificate is mounted in a Kafka client's container. */}}
{{- define "emostream.kafkaCaDir" -}}/etc/emostream/kafka{{- end -}}

{{/*
The Kafka environment of one role (dict "root" $ "component" "ingest"): the bootstrap servers,
the security protocol and, as the connection needs them, the role's SASL user name and password
(from its KafkaUser's Secret or from kafka.external.existingSecret, never from a ConfigMap) and
the CA file the volume of emostream.kafkaVolume holds.
*/}}
{{- define "emostream.kafkaEnv" -}}
{{- $root := .root -}}
{{- $c := include "emostream.kafkaConnection" $root | fromJson -}}
- name: EMOSTREAM_KAFKA_BOOTSTRAP_SERVERS
  value: {{ $c.bootstrap | quote }}
- name: EMOSTREAM_KAFKA_SECURITY_PROTOCOL
  value: {{ $c.protocol | quote }}
{{- if eq $c.credentials "kafkauser" }}
{{- $user := include "emostream.componentName" (dict "root" $root "component" .component) }}
- name: EMOSTREAM_KAFKA_SASL_MECHANISM
  value: {{ $c.mechanism | quote }}
# The KafkaUser's name is its user name; Strimzi keeps its password in a Secret of that name.
- name: EMOSTREAM_KAFKA_SASL_USERNAME
  value: {{ $user | quote }}
- name: EMOSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $user }}
      key: password
{{- else if eq $c.credentials "secret" }}
- name: EMOSTREAM_KAFKA_SASL_MECHANISM
  value: {{ $c.mechanism | quote }}
- name: EMOSTREAM_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.kafka.external.existingSecret }}
      key: {{ printf "%s-username" .component }}
- name: EMOSTREAM_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.kafka.external.existingSecret }}
      key: {{ printf "%s-password" .component }}
{{- end }}
{{- if $c.caSecret }}
- name: EMOSTREAM_KAFKA_SSL_CA_LOCATION
  value: {{ printf "%s/ca.crt" (include "emostream.kafkaCaDir" $root) | quote }}
{{- end }}
{{- end -}}

{{/*
The volume holding the brokers' CA certificate (ca.crt of emostream.kafkaConnection's caSecret),
and its mount (emostream.kafkaVolumeMount); both empty when the clients trust the system CAs.
Only the processes that open Kafka connections need it: Spark's executors get the PEM from their
driver with the query's options.
*/}}
{{- define "emostream.kafkaVolume" -}}
{{- with (include "emostream.kafkaConnection" . | fromJson).caSecret -}}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end -}}
{{- end -}}

{{- define "emostream.kafkaVolumeMount" -}}
{{- if (include "emostream.kafkaConnection" . | fromJson).caSecret -}}
- name: kafka-ca
  mountPath: {{ include "emostream.kafkaCaDir" . }}
  readOnly: true
{{- end -}}
{{- end -}}

{{/*
The component (label and name suffix) of the Service that carries a role's metrics port and
nothing else (dict "root" $ "component" "ingest"): <role>-metrics for the web tiers, whose public
Services must not carry it; the driver's own headless Service for the aggregation.
*/}}
{{- define "emostream.metricsServiceComponent" -}}
{{- if eq .component "aggregate" -}}aggregate{{- else -}}{{ printf "%s-metrics" .component }}{{- end -}}
{{- end -}}

{{/* That Service's name: the `service` label of the role's scraped series. */}}
{{- define "emostream.metricsServiceName" -}}
{{- include "emostream.componentName" (dict "root" .root "component" (include "emostream.metricsServiceComponent" .)) -}}
{{- end -}}

{{/* The in-chart Redis URL (only meaningful with redis.provider=chart). */}}
{{- define "emostream.redisUrl" -}}
{{- printf "redis://%s.%s.svc:%d/%d" (include "emostream.componentName" (dict "root" . "component" "redis")) .Release.Namespace (int .Values.redis.port) (int .Values.redis.database) -}}
{{- end -}}

{{/*
Environment variables for Kafka and Redis of one role (dict "root" $ "component" "ingest"). Kafka
credentials and a Redis URL from redis.external.existingSecret come from Secrets, so a password
never lands in a ConfigMap.
*/}}
{{- define "emostream.connectionEnv" -}}
{{ include "emostream.kafkaEnv" . }}
{{- with .root }}
{{- if and (eq .Values.redis.provider "external") .Values.redis.external.existingSecret }}
- name: EMOSTREAM_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.existingSecretKey }}
{{- else if eq .Values.redis.provider "external" }}
- name: EMOSTREAM_REDIS_URL
  value: {{ .Values.redis.external.url | quote }}
{{- else }}
- name: EMOSTREAM_REDIS_URL
  value: {{ include "emostream.redisUrl" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret holding the admin token of ingest's admin API. */}}
{{- define "emostream.adminSecretName" -}}
{{- .Values.access.adminToken.existingSecret | default (include "emostream.componentName" (dict "root" . "component" "admin")) -}}
{{- end -}}

{{/*
Secret-held settings of a role (dict "root" $ "component" ...): ingest's admin token, and the
token keys of ingest and fanout; the load test gets the admin token (to open its streams) and
an HS256 secret (to mint a token), under its own names.
*/}}
{{- define "emostream.accessEnv" -}}
{{- $root := .root -}}
{{- $tokens := $root.Values.access.tokens -}}
{{- $load := eq .component "loadtest" -}}
{{- if has .component (list "ingest" "loadtest") }}
- name: {{ ternary "EMOSTREAM_LOAD_ADMIN_TOKEN" "EMOSTREAM_ADMIN_TOKEN" $load }}
  valueFrom:
    secretKeyRef:
      name: {{ include "emostream.adminSecretName" $root }}
      key: {{ $root.Values.access.adminToken.key }}
{{- end }}
{{- if $tokens.existingSecret }}
{{- if $tokens.secretKey }}
- name: {{ ternary "EMOSTREAM_LOAD_TOKEN_SECRET" "EMOSTREAM_TOKEN_SECRET" $load }}
  valueFrom:
    secretKeyRef:
      name: {{ $tokens.existingSecret }}
      key: {{ $tokens.secretKey }}
{{- end }}
{{- if and $tokens.publicKeyKey (not $load) }}
- name: EMOSTREAM_TOKEN_PUBLIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $tokens.existingSecret }}
      key: {{ $tokens.publicKeyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
EMOSTREAM_* entries of a ConfigMap from a settings map: each key is a settings field name
(snake_case), each value a string, number, boolean, list or map (lists and maps as JSON,
which is how pydantic-settings reads complex fields).
*/}}
{{- define "emostream.settingsData" -}}
{{- range $key, $value := . }}
{{- $name := printf "EMOSTREAM_%s" (upper $key) }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{ $name }}: {{ toJson $value | quote }}
{{- else if and (kindIs "float64" $value) (eq $value (floor $value)) }}
{{- /* Helm reads every number as a float: write whole numbers without "1e+06" notation. */}}
{{ $name }}: {{ int64 $value | toString | quote }}
{{- else }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The settings every role shares (config), with an empty emoji_valence left to the built-in set. */}}
{{- define "emostream.commonSettings" -}}
{{- $common := omit .Values.config "emoji_valence" -}}
{{- if .Values.config.emoji_valence -}}
{{- $_ := set $common "emoji_valence" .Values.config.emoji_valence -}}
{{- end -}}
{{- toYaml $common -}}
{{- end -}}

{{/* Pod-level security context (values.podSecurityContext). */}}
{{- define "emostream.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Container-level security context (values.containerSecurityContext). */}}
{{- define "emostream.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{/* Scheduling fields of a component's pod spec. Call with the component's values. */}}
{{- define "emostream.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Whether Prometheus Operator resources can be created (the API is served). */}}
{{- define "emostream.monitoringApi" -}}
{{- if and .Values.monitoring.enabled (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{/* Whether KEDA's ScaledObjects can be created (autoscaling with KEDA, and the API is served). */}}
{{- define "emostream.kedaApi" -}}
{{- if and .Values.autoscaling.enabled (eq .Values.autoscaling.provider "keda") (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") -}}true{{- end -}}
{{- end -}}

{{/* Whether an autoscaler owns the web tiers' replica counts (so the Deployments set none). */}}
{{- define "emostream.autoscaled" -}}
{{- if or (include "emostream.kedaApi" .) (and .Values.autoscaling.enabled (eq .Values.autoscaling.provider "prometheus-adapter")) -}}true{{- end -}}
{{- end -}}

{{/*
The ports of the Kubernetes API server's own endpoints (the EndpointSlice default/kubernetes:
6443 on kind and kubeadm, 8443 on minikube), as a JSON list. Only a live cluster answers the
lookup (install, upgrade, --dry-run=server); under helm template and lint the list is empty.
*/}}
{{- define "emostream.apiServerEndpointPorts" -}}
{{- $ports := list -}}
{{- $slice := lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "kubernetes" -}}
{{- range (default list $slice.ports) -}}
{{- $ports = append $ports (int .port) -}}
{{- end -}}
{{- toJson $ports -}}
{{- end -}}

{{/* Whether the aggregation runs as a SparkApplication. */}}
{{- define "emostream.aggregateOperator" -}}
{{- if and .Values.aggregate.enabled (eq .Values.aggregate.mode "operator") -}}true{{- end -}}
{{- end -}}

{{/*
The ConfigMap data of one role: the shared settings (config), the role's own
(<role>.config) and what the chart decides (the metrics address; the aggregation's master,
checkpoint and executor scaling; the web tiers' access settings). Call with
(dict "root" $ "component" "ingest").
*/}}
{{- define "emostream.roleSettings" -}}
{{- $root := .root -}}
{{- $settings := deepCopy (index $root.Values .component "config") -}}
{{- /* /metrics on its own port only (the named container port `metrics`), on every address of
the pod so Prometheus reaches it; the NetworkPolicies admit networkPolicy.metricsFrom there. */ -}}
{{- $_ := set $settings "metrics_host" "0.0.0.0" -}}
{{- $_ := set $settings "metrics_port" (index $root.Values .component "metrics" "port") -}}
{{- if eq .component "aggregate" -}}
{{- $_ := set $settings "spark_master" "k8s://https://kubernetes.default.svc:443" -}}
{{- $_ := set $settings "checkpoint_location" (include "emostream.checkpointLocation" $root) -}}
{{- $_ := set $settings "autoscale_executors" true -}}
{{- end -}}
{{- if has .component (list "ingest" "fanout") -}}
{{- $access := $root.Values.access -}}
{{- $_ := set $settings "registry_mode" $access.registry -}}
{{- if $access.tokens.jwksUrl -}}
{{- $_ := set $settings "token_jwks_url" $access.tokens.jwksUrl -}}
{{- end -}}
{{- if eq .component "ingest" -}}
{{- $_ := set $settings "sender_tokens" $access.tokens.senders -}}
{{- else -}}
{{- $_ := set $settings "viewer_tokens" $access.tokens.viewers -}}
{{- end -}}
{{- end -}}
{{- $settings = merge $settings (include "emostream.commonSettings" $root | fromYaml) -}}
{{- include "emostream.settingsData" $settings -}}
{{- end -}}

{{/* A checksum of one role's settings and connection environment, for its pods' annotations. */}}
{{- define "emostream.configChecksum" -}}
{{- printf "%s\n%s" (include "emostream.roleSettings" .) (include "emostream.connectionEnv" .) | sha256sum -}}
{{- end -}}
