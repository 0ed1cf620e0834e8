#!/usr/bin/env bash
# Make sure nft (nftables) is installed: the WebRTC tests drop one browser's packets with it.
set -euo pipefail

if command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-nftables: ERROR: nft is missing; run as root: apt-get install -y nftables" >&2
    exit 1
fi
echo "ensure-nftables: installing nftables with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y nftables || { apt-get update && apt-get install -y nftables; }
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || { echo "ensure-nftables: ERROR: apt-get did not provide nft" >&2; exit 1; }
