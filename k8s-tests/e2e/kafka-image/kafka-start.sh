#!/bin/sh
# Write the broker's configuration, format its storage on first start, then run it.
# KAFKA_ADVERTISED_HOST: the name clients reach the broker by (the Service's DNS name).
# KAFKA_DATA: the data directory (a volume); KAFKA_HEAP: the JVM heap.
set -eu
: "${KAFKA_ADVERTISED_HOST:?set it to the name of the Service in front of the broker}"
DATA="${KAFKA_DATA:-/var/lib/kafka}"
CP="/opt/kafka/libs/*"
CONF="${DATA}/server.properties"
cat >"${CONF}" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9093
listeners=PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093
advertised.listeners=PLAINTEXT://${KAFKA_ADVERTISED_HOST}:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=${DATA}/logs
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
if [ ! -f "${DATA}/logs/meta.properties" ]; then
  id="$(java -cp "${CP}" kafka.tools.StorageTool random-uuid | tail -n 1)"
  java -cp "${CP}" kafka.tools.StorageTool format -t "${id}" -c "${CONF}" --standalone
fi
exec java -Xms"${KAFKA_HEAP:-384m}" -Xmx"${KAFKA_HEAP:-384m}" -XX:+UseG1GC \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Djava.awt.headless=true \
  -cp "${CP}" kafka.Kafka "${CONF}"
