{{/*
Checks across values that values.schema.json cannot express. Each failure names the values
to change. Included once, from configmap.yaml.
*/}}
{{- define "emostream.validate" -}}
{{- $v := .Values -}}
{{- /* Settings the chart derives from kafka.*, redis.* and <role>.metrics: never from config. */ -}}
{{- $managed := list "kafka_bootstrap_servers" "kafka_security_protocol" "kafka_sasl_mechanism" "kafka_sasl_username" "kafka_sasl_password" "kafka_ssl_ca_location" "redis_url" "metrics_host" "metrics_port" -}}
{{- $managedBy := "kafka.* (Kafka address, security and credentials), redis.* or <role>.metrics.port instead" -}}
{{- range $role := list "ingest" "fanout" "aggregate" -}}
{{- range $key := $managed -}}
{{- if hasKey (index $v $role "config") $key -}}
{{- fail (printf "%s.config.%s is set by the chart: use %s" $role $key $managedBy) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key := $managed -}}
{{- if hasKey $v.config $key -}}
{{- fail (printf "config.%s is set by the chart: use %s" $key $managedBy) -}}
{{- end -}}
{{- end -}}
{{- /* The metrics port is a port of its own: never the public one. */ -}}
{{- range $role, $public := dict "ingest" 8000 "fanout" 8080 -}}
{{- if eq (int (index $v $role "metrics" "port")) $public -}}
{{- fail (printf "%s.metrics.port must differ from %s's public port %d: /metrics is served on a port of its own" $role $role $public) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "spark_master" "checkpoint_location" "autoscale_executors" -}}
{{- if hasKey $v.aggregate.config $key -}}
{{- fail (printf "aggregate.config.%s is set by the chart (aggregate.mode, aggregate.checkpoint; executors always follow the backlog within min_executors..max_executors)" $key) -}}
{{- end -}}
{{- end -}}
{{- $tokens := $v.access.tokens -}}
{{- if and (or (ne $tokens.senders "off") (ne $tokens.viewers "off")) (not (or $tokens.existingSecret $tokens.jwksUrl)) -}}
{{- fail "access.tokens.senders/viewers need a key: access.tokens.existingSecret (secretKey or publicKeyKey) or access.tokens.jwksUrl" -}}
{{- end -}}
{{- if and $tokens.existingSecret (not (or $tokens.secretKey $tokens.publicKeyKey)) -}}
{{- fail "access.tokens.existingSecret needs access.tokens.secretKey (HS256) or access.tokens.publicKeyKey (PEM)" -}}
{{- end -}}
{{- if eq $v.kafka.provider "external" -}}
{{- $e := $v.kafka.external -}}
{{- if not $e.bootstrapServers -}}
{{- fail "kafka.provider=external needs kafka.external.bootstrapServers" -}}
{{- end -}}
{{- if and (hasPrefix "SASL_" $e.securityProtocol) (not $e.existingSecret) -}}
{{- fail (printf "kafka.external.securityProtocol=%s needs kafka.external.existingSecret: a Secret with the keys ingest-username, ingest-password, aggregate-username, aggregate-password, fanout-username, fanout-password (and ca.crt for SASL_SSL with caFromSecret)" $e.securityProtocol) -}}
{{- end -}}
{{- if and $e.existingSecret (eq $e.securityProtocol "PLAINTEXT") -}}
{{- fail "kafka.external.existingSecret is read only with kafka.external.securityProtocol SSL, SASL_PLAINTEXT or SASL_SSL; set the protocol the brokers speak, or leave existingSecret empty" -}}
{{- end -}}
{{- if and (eq $e.securityProtocol "SSL") $e.existingSecret (not $e.caFromSecret) -}}
{{- fail "kafka.external.existingSecret with securityProtocol=SSL holds only the CA (ca.crt), but kafka.external.caFromSecret is false: set caFromSecret=true, or leave existingSecret empty to trust the system CAs" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $v.redis.provider "external") (not (or $v.redis.external.url $v.redis.external.existingSecret)) -}}
{{- fail "redis.provider=external needs redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- /* Graceful shutdown: gunicorn's graceful timeout must fit between preStop and SIGKILL. */ -}}
{{- $ingestGraceful := int (default 20 $v.ingest.config.graceful_timeout_s) -}}
{{- $ingestFlush := int (default 10 $v.ingest.config.shutdown_flush_timeout_s) -}}
{{- if le $ingestGraceful $ingestFlush -}}
{{- fail (printf "ingest.config.graceful_timeout_s (%d) must exceed ingest.config.shutdown_flush_timeout_s (%d), or workers are killed while accepted events drain" $ingestGraceful $ingestFlush) -}}
{{- end -}}
{{- $fanoutDrain := int (default 5 $v.fanout.config.drain_s) -}}
{{- if lt (int (default 10 $v.fanout.config.graceful_timeout_s)) (add $fanoutDrain 4) -}}
{{- fail (printf "fanout.config.graceful_timeout_s must be at least fanout.config.drain_s + 4 (%d), or draining workers are killed before their viewers have moved" (add $fanoutDrain 4)) -}}
{{- end -}}
{{- range $role, $graceful := dict "ingest" $ingestGraceful "fanout" (int (default 10 $v.fanout.config.graceful_timeout_s)) -}}
{{- $c := index $v $role -}}
{{- if le (int $c.terminationGracePeriodSeconds) (add (int $c.preStopSleepSeconds) $graceful) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must exceed %s.preStopSleepSeconds + %s.config.graceful_timeout_s (%d + %d)" $role (int $c.terminationGracePeriodSeconds) $role $role (int $c.preStopSleepSeconds) $graceful) -}}
{{- end -}}
{{- end -}}
{{- if $v.autoscaling.enabled -}}
{{- range $role := list "ingest" "fanout" -}}
{{- $a := index $v.autoscaling $role -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "autoscaling.%s.minReplicas (%d) exceeds maxReplicas (%d)" $role (int $a.minReplicas) (int $a.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- if ge (int $v.autoscaling.fanout.connectionsPerPod) (int (default 5000 $v.fanout.config.max_connections)) -}}
{{- fail (printf "autoscaling.fanout.connectionsPerPod (%d) must stay below fanout.config.max_connections (%d), what one worker takes, or pods refuse viewers before the autoscaler reacts" (int $v.autoscaling.fanout.connectionsPerPod) (int (default 5000 $v.fanout.config.max_connections))) -}}
{{- end -}}
{{- end -}}
{{- if $v.aggregate.enabled -}}
{{- $minExecutors := int (default 1 $v.aggregate.config.min_executors) -}}
{{- $maxExecutors := int (default 1 $v.aggregate.config.max_executors) -}}
{{- if gt $minExecutors $maxExecutors -}}
{{- fail (printf "aggregate.config.min_executors (%d) exceeds aggregate.config.max_executors (%d)" $minExecutors $maxExecutors) -}}
{{- end -}}
{{- $cp := $v.aggregate.checkpoint -}}
{{- if and (not $cp.location) (not $cp.persistence.enabled) (not $cp.persistence.existingClaim) -}}
{{- fail "aggregate.checkpoint needs a location (e.g. s3a://...) or persistence (enabled or existingClaim): a checkpoint inside a pod is lost with it, and the query would restart from scratch" -}}
{{- end -}}
{{- if and $cp.location (or $cp.persistence.enabled $cp.persistence.existingClaim) -}}
{{- fail "set either aggregate.checkpoint.location or aggregate.checkpoint.persistence, not both" -}}
{{- end -}}
{{- end -}}
{{- /* On a live cluster (the API server's endpoints answer a lookup), every operator the
values need must be there: without Strimzi there is no Kafka, without the Spark Operator no
aggregation. helm template and lint render for whatever cluster the output is meant for. */ -}}
{{- if include "emostream.apiServerEndpointPorts" . | fromJsonArray -}}
{{- $missing := list -}}
{{- if and (eq $v.kafka.provider "strimzi") (not (.Capabilities.APIVersions.Has "kafka.strimzi.io/v1")) -}}
{{- $missing = append $missing "the Strimzi operator (kafka.strimzi.io/v1; or kafka.provider=external with kafka.external.bootstrapServers)" -}}
{{- end -}}
{{- if and (include "emostream.aggregateOperator" .) (not (.Capabilities.APIVersions.Has "sparkoperator.k8s.io/v1beta2")) -}}
{{- $missing = append $missing "the Kubeflow Spark Operator (sparkoperator.k8s.io/v1beta2; or aggregate.mode=native)" -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "this cluster lacks what the values need; install %s (docs/install.md), then install again" (join ", and " $missing)) -}}
{{- end -}}
{{- end -}}
{{- if and $v.autoscaling.enabled (eq $v.autoscaling.provider "keda") (not $v.autoscaling.prometheus.serverAddress) -}}
{{- fail "autoscaling.provider=keda needs autoscaling.prometheus.serverAddress" -}}
{{- end -}}
{{- if and $v.loadtest.enabled (lt (int $v.loadtest.workers) 1) -}}
{{- fail "loadtest.workers must be at least 1" -}}
{{- end -}}
{{- end -}}

{{/* Where the aggregation checkpoints: the explicit location, else the mounted volume. */}}
{{- define "emostream.checkpointLocation" -}}
{{- default "/checkpoints/aggregate" .Values.aggregate.checkpoint.location -}}
{{- end -}}

{{/* The checkpoint claim's name, empty when no volume is used. */}}
{{- define "emostream.checkpointClaim" -}}
{{- $p := .Values.aggregate.checkpoint.persistence -}}
{{- if $p.existingClaim -}}
{{- $p.existingClaim -}}
{{- else if $p.enabled -}}
{{- include "emostream.componentName" (dict "root" . "component" "checkpoints") -}}
{{- end -}}
{{- end -}}

{{/* Whether executors must share the driver's node (a ReadWriteOnce checkpoint volume). */}}
{{- define "emostream.colocateExecutors" -}}
{{- if and (include "emostream.checkpointClaim" .) (not (has "ReadWriteMany" .Values.aggregate.checkpoint.persistence.accessModes)) -}}true{{- end -}}
{{- end -}}
