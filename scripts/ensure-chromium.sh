#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium (Playwright drives it; never `playwright install`).
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-chromium: ERROR: $CHROMIUM is missing; run as root: apt-get install -y chromium" >&2
    exit 1
fi
echo "ensure-chromium: installing chromium with apt-get (about a minute)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
[ -x "$CHROMIUM" ] || { echo "ensure-chromium: ERROR: apt-get did not provide $CHROMIUM" >&2; exit 1; }
