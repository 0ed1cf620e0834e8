#!/usr/bin/env bash
# Make sure coturn's turnserver is installed: the WebRTC tests relay a visit through it.
set -euo pipefail

if command -v turnserver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-coturn: ERROR: turnserver is missing; run as root: apt-get install -y coturn" >&2
    exit 1
fi
echo "ensure-coturn: installing coturn with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y coturn || { apt-get update && apt-get install -y coturn; }
command -v turnserver >/dev/null 2>&1 || { echo "ensure-coturn: ERROR: apt-get did not provide turnserver" >&2; exit 1; }
