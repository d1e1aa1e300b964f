#!/bin/bash
# Readiness of a cloud Envoy, run inside its container (the image has bash but no curl, hence
# /dev/tcp; the admin endpoint stays on loopback). Ready means both:
#   1. Envoy accepted its configuration: /ready is 200 (the xDS config sources wait for the first
#      answer as long as it takes, so a replica cut off from the xDS server never claims readiness);
#   2. it holds reverse tunnels, so kube-apiserver's CONNECTs sent to it reach edges: some worker holds
#      a node (upstream_reverse_connection.worker_N.total_nodes). A fleet with no edge at all would then
#      never be ready, and Services and webhooks (which this replica also serves) would go with it: after
#      GRACE_SECONDS of uptime a replica without tunnels is ready anyway. Edges re-dial a restarted
#      replica within about 10 s, so the default 30 s keeps it out of the Service until they are back.
# Prints why when not ready (the kubelet records it in the pod's events).
set -u
ADMIN_HOST=${ADMIN_HOST:-127.0.0.1}
ADMIN_PORT=${ADMIN_PORT:-19000}
GRACE_SECONDS=${GRACE_SECONDS:-30}

# GET $1 from the admin endpoint: the body on stdout; fails unless the status is 200.
get() {
  exec 3<>"/dev/tcp/$ADMIN_HOST/$ADMIN_PORT" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$1" >&3
  local status line
  read -r -t 2 _ status _ <&3 || return 1
  while IFS= read -r -t 2 line <&3 && [ "${line%$'\r'}" != "" ]; do :; done
  cat <&3
  exec 3<&-
  [ "$status" = 200 ]
}

if ! get /ready >/dev/null; then
  echo "not ready: Envoy has not accepted its configuration from the xDS server yet"
  exit 1
fi
nodes=$(get '/stats?filter=total_nodes' | awk -F': ' '$1 ~ /^upstream_reverse_connection\.worker_[0-9]+\.total_nodes$/ { sum += $2 } END { print sum + 0 }')
if [ "$nodes" -gt 0 ]; then
  exit 0
fi
uptime=$(get /server_info | tr -d ' \n' | grep -o '"uptime_current_epoch":"[0-9]*s"' | grep -o '[0-9]\+')
if [ "${uptime:-0}" -ge "$GRACE_SECONDS" ]; then
  exit 0
fi
echo "not ready: no reverse tunnels yet (up ${uptime:-0} s; ready without tunnels after ${GRACE_SECONDS} s)"
exit 1
