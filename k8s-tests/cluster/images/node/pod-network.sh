#!/bin/bash
# The node's part of the pod network, as kind's kindnetd does it, for a cluster of several nodes.
# The controller manager gives each node a pod subnet (spec.podCIDR, a /24 of 10.244.0.0/16);
# every few seconds this script
#   - writes the CNI config (ptp + host-local) for this node's subnet, once it is known: the
#     kubelet reports the node Ready only from then on;
#   - routes every other node's subnet to that node's address on the node network, so pods
#     reach pods on other nodes with their own addresses (NetworkPolicies see the real source);
#   - masquerades pod traffic that leaves the pod network (to a node, to the node network's
#     DNS), which has no route back to a pod address.
# It reads the nodes with the kubelet's own credentials, which may read every Node.
set -uo pipefail

PODS="${EMOSTREAM_POD_CIDR:-10.244.0.0/16}"
TEMPLATE=/kind/cni/10-ptp.conflist.in
CONF=/etc/cni/net.d/10-ptp.conflist
KUBECONFIG=/etc/kubernetes/kubelet.conf
CHAIN=EMOSTREAM-MASQ
SELF="$(uname -n)"

masquerade() {
  iptables -w -t nat -N "${CHAIN}" 2>/dev/null || iptables -w -t nat -F "${CHAIN}"
  iptables -w -t nat -A "${CHAIN}" -d "${PODS}" -j RETURN
  iptables -w -t nat -A "${CHAIN}" -d 224.0.0.0/4 -j RETURN
  iptables -w -t nat -A "${CHAIN}" -j MASQUERADE
  iptables -w -t nat -C POSTROUTING -s "${PODS}" -j "${CHAIN}" 2>/dev/null ||
    iptables -w -t nat -A POSTROUTING -s "${PODS}" -j "${CHAIN}"
}

write_conf() {
  local subnet=$1
  grep -qF "\"${subnet}\"" "${CONF}" 2>/dev/null && return
  sed "s|@POD_SUBNET@|${subnet}|" "${TEMPLATE}" >"${CONF}.new"
  mv "${CONF}.new" "${CONF}"
  echo "pod-network: ${CONF} for ${SELF}'s pod subnet ${subnet}"
}

# One line per node: name, pod subnet, address on the node network.
nodes() {
  kubectl --kubeconfig "${KUBECONFIG}" get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.podCIDR}{" "}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}' 2>/dev/null
}

sync_once() {
  local name subnet address listing
  listing="$(nodes)" || return
  while read -r name subnet address; do
    [[ -n "${subnet}" && -n "${address}" ]] || continue
    if [[ "${name}" == "${SELF}" ]]; then
      write_conf "${subnet}"
    elif [[ "$(ip -4 route show "${subnet}")" != *"via ${address} "* ]]; then
      ip route replace "${subnet}" via "${address}" && echo "pod-network: ${subnet} via ${address} (${name})"
    fi
  done <<<"${listing}"
}

masquerade
echo "pod-network: pods ${PODS}; pod traffic leaving it is masqueraded"
while true; do
  [[ -s "${KUBECONFIG}" ]] && sync_once
  sleep 3
done
