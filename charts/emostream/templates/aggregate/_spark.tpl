{{/*
Spark properties of the aggregation, shared by both modes. Native mode writes them to
spark-defaults.conf; operator mode puts them in the SparkApplication's sparkConf (the operator
sets resources and the executor count from their own fields, so those are left out there).
*/}}

{{/* Labels of executor pods (not selected by the driver's Service or NetworkPolicy). */}}
{{- define "emostream.aggregate.executorSelectorLabels" -}}
{{ include "emostream.componentSelectorLabels" (dict "root" . "component" "aggregate-executor") }}
{{- end -}}

{{- define "emostream.aggregate.sparkConf" -}}
{{- $a := .Values.aggregate -}}
{{- $conf := dict -}}
{{- $_ := set $conf "spark.driver.port" ($a.ports.driver | toString) -}}
{{- $_ := set $conf "spark.blockManager.port" ($a.ports.blockManager | toString) -}}
{{- $_ := set $conf "spark.ui.enabled" "false" -}}
{{- $_ := set $conf "spark.sql.shuffle.partitions" (int $a.config.shuffle_partitions | toString) -}}
{{- /* Executors leave with their driver: no orphaned pods after a driver restart. */ -}}
{{- $_ := set $conf "spark.kubernetes.executor.deleteOnTermination" "true" -}}
{{- $_ := set $conf "spark.kubernetes.executor.podNamePrefix" (include "emostream.componentName" (dict "root" . "component" "aggregate")) -}}
{{- $_ := set $conf "spark.kubernetes.container.image" (include "emostream.image" (dict "root" . "image" $a.image)) -}}
{{- $_ := set $conf "spark.kubernetes.container.image.pullPolicy" (include "emostream.pullPolicy" (dict "root" . "image" $a.image)) -}}
{{- if not .operator -}}
{{- $_ := set $conf "spark.master" "k8s://https://kubernetes.default.svc:443" -}}
{{- $_ := set $conf "spark.submit.deployMode" "client" -}}
{{- $_ := set $conf "spark.app.name" (include "emostream.componentName" (dict "root" . "component" "aggregate")) -}}
{{- $_ := set $conf "spark.driver.memory" $a.driver.memory -}}
{{- $_ := set $conf "spark.driver.cores" ($a.driver.cores | toString) -}}
{{- $_ := set $conf "spark.executor.cores" ($a.executor.cores | toString) -}}
{{- $_ := set $conf "spark.executor.memory" $a.executor.memory -}}
{{- $_ := set $conf "spark.executor.memoryOverhead" $a.executor.memoryOverhead -}}
{{- $_ := set $conf "spark.kubernetes.executor.request.cores" ($a.executor.requestCores | toString) -}}
{{- $_ := set $conf "spark.kubernetes.executor.limit.cores" ($a.executor.limitCores | toString) -}}
{{- $_ := set $conf "spark.kubernetes.executor.podTemplateFile" "/opt/emostream/conf/executor-pod-template.yaml" -}}
{{- $_ := set $conf "spark.kubernetes.executor.podTemplateContainerName" "executor" -}}
{{- /* The driver's own autoscaler sizes the executors to the backlog (emostream's
_scaling); Spark's dynamic allocation would fight it. */ -}}
{{- $_ := set $conf "spark.dynamicAllocation.enabled" "false" -}}
{{- $_ := set $conf "spark.executor.instances" (int (default 1 $a.config.min_executors) | toString) -}}
{{- end -}}
{{- range $key, $value := $a.sparkConf -}}
{{- $_ := set $conf $key ($value | toString) -}}
{{- end -}}
{{- toYaml $conf -}}
{{- end -}}

{{/* Required pod affinity to the driver, when executors share its ReadWriteOnce volume. */}}
{{- define "emostream.aggregate.executorAffinity" -}}
{{- if include "emostream.colocateExecutors" . }}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "emostream.componentSelectorLabels" (dict "root" . "component" "aggregate") | nindent 10 }}
{{- end }}
{{- end -}}

{{/* Volumes of driver and executors: /tmp, and the checkpoint claim when one is used. */}}
{{- define "emostream.aggregate.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- with include "emostream.checkpointClaim" . }}
- name: checkpoints
  persistentVolumeClaim:
    claimName: {{ . }}
{{- end }}
{{- end -}}

{{- define "emostream.aggregate.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "emostream.checkpointClaim" . }}
- name: checkpoints
  mountPath: /checkpoints
{{- end }}
{{- end -}}
