#!/usr/bin/env bash
# Run a command in a new network namespace whose only interface is `lo` (up).
# WebRTC tests must run like this: see /work/shared/WEBRTC_TESTING.md, trap 3.
#   scripts/in-netns.sh .venv/bin/pytest tests/webrtc -k harness
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
command -v unshare >/dev/null || { echo "in-netns: ERROR: unshare (util-linux) is missing" >&2; exit 1; }
IP=$(command -v ip || true)
[ -n "$IP" ] || IP=/sbin/ip
[ -x "$IP" ] || { echo "in-netns: ERROR: ip (iproute2) is missing" >&2; exit 1; }

if [ "$(id -u)" = 0 ]; then
    unshare_args=(--net)
else
    # Without root, a user namespace maps us to root inside it so we may own a network namespace.
    unshare_args=(--map-root-user --net)
fi
export TELECONSULT_TEST_NETNS=1
# shellcheck disable=SC2016
exec unshare "${unshare_args[@]}" sh -c '"$0" link set lo up && exec "$@"' "$IP" "$@"
