{{/* Pieces of the NetworkPolicies (networkpolicies.yaml). */}}
{{- define "emostream.np.dns" -}}
# Name resolution, wherever the cluster DNS runs.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{- /* The pods that talk to Kafka: the peers of the Strimzi listener's NetworkPolicy. */}}
{{- define "emostream.np.kafkaClients" -}}
{{- range $component := list "ingest" "fanout" "aggregate" "aggregate-executor" }}
- podSelector:
    matchLabels:
      {{- include "emostream.componentSelectorLabels" (dict "root" $ "component" $component) | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "emostream.np.kafka" -}}
- ports:
    {{- range . }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}
