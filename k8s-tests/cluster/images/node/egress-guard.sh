#!/bin/bash
# Keep the cluster's traffic on this machine. Without this, a packet for a Service IP that
# kube-proxy has not translated yet (the first second of a new Service) follows the node's
# default route off the machine, and so does anything a pod sends to an outside address.
# Pods may reach each other, the node and its Docker network (the node's gateway answers DNS
# for CoreDNS); everything else is rejected at once, so a client retries instead of talking to
# whatever answers outside.
set -euo pipefail

PODS="${EMOSTREAM_POD_CIDR:-10.244.0.0/16}"
SERVICES="${EMOSTREAM_SERVICE_CIDR:-10.96.0.0/12}"
CHAIN=EMOSTREAM-EGRESS

node_network="$(ip -4 route show dev eth0 scope link | awk 'NR == 1 { print $1 }')"
[[ -n "${node_network}" ]] || { echo "egress-guard: no network on eth0" >&2; exit 1; }

iptables -w -N "${CHAIN}" 2>/dev/null || iptables -w -F "${CHAIN}"
iptables -w -A "${CHAIN}" -d "${SERVICES}" -j REJECT
iptables -w -A "${CHAIN}" -s "${PODS}" -d "${PODS}" -j RETURN
iptables -w -A "${CHAIN}" -s "${PODS}" -d "${node_network}" -j RETURN
iptables -w -A "${CHAIN}" -s "${PODS}" -j REJECT
for hook in FORWARD OUTPUT; do
  iptables -w -C "${hook}" -j "${CHAIN}" 2>/dev/null || iptables -w -I "${hook}" -j "${CHAIN}"
done
echo "egress-guard: pods ${PODS} may reach pods and ${node_network}; untranslated ${SERVICES} rejected"
