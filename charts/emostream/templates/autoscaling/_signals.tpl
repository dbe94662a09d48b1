{{/*
The load signal of each tier, in one place for both providers (docs/autoscaling.md):
  ingest  HTTP requests per second per pod (probes and scrapes left out), and CPU;
  fanout  open streaming connections per pod, and its own delivery lag (swarm emitted ->
          written to a viewer): a pod short of CPU falls behind however few its viewers.
Neither tier consumes Kafka with a consumer group (ingest only produces; fanout assigns itself
every partition of swarms in each worker), so neither has a consumer-group lag to scale on;
fanout's delivery lag is the lag that is its work.
*/}}

{{/* PromQL selector of one tier's scraped series (its metrics Service's targets). */}}
{{- define "emostream.autoscaling.selector" -}}
namespace="{{ .root.Release.Namespace }}",service="{{ include "emostream.metricsServiceName" . }}"
{{- end -}}

{{/* KEDA prometheus trigger query: the tier's total, divided by the target per pod by KEDA. */}}
{{- define "emostream.autoscaling.query" -}}
{{- $sel := include "emostream.autoscaling.selector" . -}}
{{- if eq .component "ingest" -}}
sum(rate(emostream_ingest_requests_total{ {{- $sel }},route!~"/healthz|/readyz|/metrics"}[1m]))
{{- else -}}
sum(emostream_fanout_connections{ {{- $sel -}} })
{{- end -}}
{{- end -}}

{{/*
KEDA prometheus trigger query of fanout's delivery lag: the slowest pod's 90th percentile over
the last minute. HPA scales a Value metric as replicas * value / target. With no samples (no
viewers) the quantile is NaN, which `> 0` drops, so an idle tier reports nothing.
*/}}
{{- define "emostream.autoscaling.lagQuery" -}}
max(histogram_quantile(0.9, sum by (pod, le) (rate(emostream_fanout_delivery_lag_seconds_bucket{ {{- include "emostream.autoscaling.selector" . -}} }[1m]))) > 0)
{{- end -}}

{{/* Custom metric (custom.metrics.k8s.io, per pod) that prometheus-adapter serves for a tier. */}}
{{- define "emostream.autoscaling.podMetric" -}}
{{- if eq .component "ingest" -}}
emostream_ingest_requests_per_second
{{- else -}}
emostream_fanout_connections
{{- end -}}
{{- end -}}

{{/* Target per pod of a tier. */}}
{{- define "emostream.autoscaling.target" -}}
{{- $a := index .root.Values.autoscaling .component -}}
{{- if eq .component "ingest" -}}
{{- $a.requestsPerSecondPerPod -}}
{{- else -}}
{{- $a.connectionsPerPod -}}
{{- end -}}
{{- end -}}
