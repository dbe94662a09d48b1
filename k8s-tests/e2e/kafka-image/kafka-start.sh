#!/bin/sh
# Write the broker's configuration, format its storage on first start (with the admin's SCRAM
# credential), then run it. Listeners: CLIENTS, SASL_SSL on 9093, the only one outside the pod;
# REPLICATION (inter-broker) and CONTROLLER, plaintext on the pod's loopback only, whose principal
# (User:ANONYMOUS) is therefore a super user beside the admin.
# KAFKA_ADVERTISED_HOST: the name clients reach the broker by (the Service's DNS name);
# KAFKA_ADMIN_USER / KAFKA_ADMIN_PASSWORD: the super user; KAFKA_HEAP: the JVM heap.
# /etc/kafka/tls/keystore.pem: the broker's key (PKCS#8) and certificate chain, PEM.
set -eu
: "${KAFKA_ADVERTISED_HOST:?the name clients reach the broker by, the Service name}"
: "${KAFKA_ADMIN_USER:?}" "${KAFKA_ADMIN_PASSWORD:?}"
DATA=/var/lib/kafka
TLS=/etc/kafka/tls
CP="/opt/kafka/libs/*"
CONF="${DATA}/server.properties"
cat >"${CONF}" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:9095
listeners=CLIENTS://0.0.0.0:9093,REPLICATION://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095
advertised.listeners=CLIENTS://${KAFKA_ADVERTISED_HOST}:9093,REPLICATION://127.0.0.1:9094
listener.security.protocol.map=CLIENTS:SASL_SSL,REPLICATION:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=REPLICATION
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.clients.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=${TLS}/keystore.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:${KAFKA_ADMIN_USER};User:ANONYMOUS
allow.everyone.if.no.acl.found=false
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
  java -cp "${CP}" kafka.tools.StorageTool format -t "${id}" -c "${CONF}" --standalone \
    --add-scram "SCRAM-SHA-512=[name=${KAFKA_ADMIN_USER},password=${KAFKA_ADMIN_PASSWORD}]"
fi
exec java -Xms"${KAFKA_HEAP}" -Xmx"${KAFKA_HEAP}" -XX:+UseG1GC \
  -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -Djava.awt.headless=true \
  -cp "${CP}" kafka.Kafka "${CONF}"
