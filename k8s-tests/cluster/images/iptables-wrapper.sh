#!/bin/sh
# A node agent that writes iptables rules (kube-proxy, kube-router) must use the same iptables
# backend (legacy or nf_tables) as the node, or packets meet two rule sets. This script is
# installed as /usr/local/bin/<agent>, the real binary as /usr/local/lib/<agent>/<agent>. The
# kubelet marks the backend it uses with the KUBE-IPTABLES-HINT / KUBE-KUBELET-CANARY chains;
# without them, the backend holding more rules wins. Then the agent runs with all its arguments.
set -eu

has_kubelet_chains() {
  { "iptables-$1-save" -t mangle; "ip6tables-$1-save" -t mangle; } 2>/dev/null |
    grep -q -e KUBE-IPTABLES-HINT -e KUBE-KUBELET-CANARY
}

count_rules() {
  { "iptables-$1-save"; "ip6tables-$1-save"; } 2>/dev/null | grep -c '^-' || true
}

if has_kubelet_chains nft; then
  mode=nft
elif has_kubelet_chains legacy; then
  mode=legacy
elif [ "$(count_rules legacy)" -gt "$(count_rules nft)" ]; then
  mode=legacy
else
  mode=nft
fi

for tool in iptables ip6tables; do
  update-alternatives --set "${tool}" "/usr/sbin/${tool}-${mode}" >/dev/null
done
agent="$(basename "$0")"
exec "/usr/local/lib/${agent}/${agent}" "$@"
