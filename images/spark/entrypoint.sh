#!/bin/bash
# Entry point of the Spark image.
#
# Spark on Kubernetes (native spark-submit or the Spark Operator) starts this image with
#   driver <spark-submit arguments>   in the driver pod: spark-submit in client mode, since the
#                                     pod already is the cluster-side driver;
#   executor                          in executor pods: the executor JVM, told who it is by the
#                                     SPARK_* variables the driver puts in the pod spec.
# Any other command (the default: the job in local mode; `python ...`, `java -version`) runs as
# given. tini runs as PID 1 so signals reach the JVM and orphaned Python workers are reaped.
set -euo pipefail

: "${SPARK_HOME:?SPARK_HOME must be set}"

# Spark's own jars (the Kafka connector among them), behind the mounted configuration.
classpath="${SPARK_HOME}/jars/*"
if [[ -n "${SPARK_EXTRA_CLASSPATH:-}" ]]; then
  classpath="${classpath}:${SPARK_EXTRA_CLASSPATH}"
fi
classpath="${SPARK_CONF_DIR:-${SPARK_HOME}/conf}:${classpath}"
if [[ -n "${HADOOP_CONF_DIR:-}" ]]; then
  classpath="${HADOOP_CONF_DIR}:${classpath}"
fi

executor_java_options() {
  # The driver passes the executor's JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...;
  # read them by name, in index order, so options containing spaces stay whole.
  local name
  java_opts=()
  while read -r name; do
    java_opts+=("${!name}")
  done < <(compgen -e | grep -E '^SPARK_JAVA_OPT_[0-9]+$' | sort -t_ -k4,4n || true)
}

case "${1:-}" in
  driver)
    shift
    command=(
      "${SPARK_HOME}/bin/spark-submit"
      --deploy-mode client
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}"
      "$@"
    )
    ;;
  executor)
    shift
    executor_java_options
    memory="${SPARK_EXECUTOR_MEMORY:?executor mode needs SPARK_EXECUTOR_MEMORY}"
    command=(
      "${JAVA_HOME}/bin/java" "${java_opts[@]}" "-Xms${memory}" "-Xmx${memory}"
      -cp "${classpath}${SPARK_DIST_CLASSPATH:+:${SPARK_DIST_CLASSPATH}}"
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
      --driver-url "${SPARK_DRIVER_URL:?executor mode needs SPARK_DRIVER_URL}"
      --executor-id "${SPARK_EXECUTOR_ID:?executor mode needs SPARK_EXECUTOR_ID}"
      --cores "${SPARK_EXECUTOR_CORES:?executor mode needs SPARK_EXECUTOR_CORES}"
      --app-id "${SPARK_APPLICATION_ID:?executor mode needs SPARK_APPLICATION_ID}"
      --hostname "${SPARK_EXECUTOR_POD_IP:?executor mode needs SPARK_EXECUTOR_POD_IP}"
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
      --podName "${SPARK_EXECUTOR_POD_NAME:-${HOSTNAME:-executor}}"
    )
    ;;
  "")
    echo "usage: driver <spark-submit arguments> | executor | <command> [arguments]" >&2
    exit 64
    ;;
  *)
    command=("$@")
    ;;
esac

exec /usr/bin/tini -s -- "${command[@]}"
