{{/* The pod spec of a Locust master or worker (loadtest.yaml). */}}
{{- define "emostream.loadtest.pod" -}}
{{- $root := .root -}}
{{- $l := $root.Values.loadtest -}}
serviceAccountName: default
automountServiceAccountToken: false
restartPolicy: {{ .restartPolicy }}
{{- include "emostream.imagePullSecrets" (dict "root" $root "indent" 0) }}
{{ include "emostream.podSecurityContext" $root }}
containers:
  - name: locust
    image: {{ include "emostream.image" (dict "root" $root "image" $l.image) | quote }}
    imagePullPolicy: {{ include "emostream.pullPolicy" (dict "root" $root "image" $l.image) }}
    args:
      {{- toYaml .args | nindent 6 }}
      {{- with $l.extraArgs }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    env:
      # The locustfile's viewers listen here (its default is a local stack's 127.0.0.1:8080).
      - name: EMOSTREAM_FANOUT_URL
        value: {{ printf "http://%s:%d" (include "emostream.componentName" (dict "root" $root "component" "fanout")) (int $root.Values.fanout.service.port) | quote }}
      # The admin token opens the load's streams; an HS256 secret mints the load's token.
      {{- include "emostream.accessEnv" (dict "root" $root "component" "loadtest") | nindent 6 }}
      {{- with $l.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with .ports }}
    ports:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    resources:
      {{- toYaml $l.resources | nindent 6 }}
    {{- include "emostream.containerSecurityContext" $root | nindent 4 }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}
