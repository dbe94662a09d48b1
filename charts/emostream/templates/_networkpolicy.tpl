{{/* Pieces of the NetworkPolicies (networkpolicies.yaml). */}}
{{- define "emostream.np.dns" -}}
# Name resolution, wherever the cluster DNS runs.
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{- define "emostream.np.kafka" -}}
- ports:
    {{- range . }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}
