"""A browser on a network of its own whose packets a test can drop (WEBRTC_TESTING.md,
"Shaped, lossy and interrupted links").

The browser runs in a network namespace joined by a veth pair to a bridge in the test's
namespace, where the server listens. nftables rules in the browser's namespace drop everything
it sends and receives on that link (or only UDP): the network "goes away" for that browser
alone, with no interface going down (which browsers notice at once), as in a lift. A weak link
is shaped the same way: ``tc tbf`` on the bridge's end of the veth limits what reaches the
browser, and an nftables rule drops a share of it at random (this kernel has no netem).
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The bridge in the test's namespace and its address: the server's address for such browsers.
BRIDGE, GATEWAY, PREFIX = "tcbr0", "10.77.0.1", 24
_TABLE = "teleconsult_loss"
_SHAPE_TABLE = "teleconsult_shape"


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def _ensure_bridge() -> None:
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        return
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{GATEWAY}/{PREFIX}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


class OwnNetwork:
    """
    One browser's network namespace, its address, and the switch that drops its packets.

    :param name: The namespace (unique on the machine: ``ip netns`` names are global).
    :param address: The browser's address on the bridge.
    :param executable: A wrapper that starts Chromium in the namespace (Playwright's
        ``executable_path``).
    """

    def __init__(self, name: str, address: str, executable: Path, outside: str) -> None:
        self.name = name
        self.address = address
        self.executable = executable
        self._link = "eth0"
        self._outside = outside

    def drop(self, *, udp_only: bool = False) -> None:
        """
        Drop every packet the browser sends or receives on its link (or only UDP ones).

        :param udp_only: Keep TCP (the signaling WebSocket), drop UDP (the media).
        """
        match = "meta l4proto udp " if udp_only else ""
        rules = (
            f"table inet {_TABLE} {{\n"
            "  chain inbound { type filter hook input priority 0; policy accept;\n"
            f'    iifname "{self._link}" {match}drop; }}\n'
            "  chain outbound { type filter hook output priority 0; policy accept;\n"
            f'    oifname "{self._link}" {match}drop; }}\n'
            "}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
            input=rules.encode(),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def restore(self) -> None:
        """Let the packets through again."""
        _run("ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", _TABLE)

    def shape_downlink(self, rate_kbit: int, loss_percent: int = 0) -> None:
        """
        Make the browser's downlink weak: at most `rate_kbit` reach it (excess queued up to
        300 ms, then dropped), and `loss_percent` % of what arrives is lost at random.

        :param rate_kbit: The rate limit, kbit/s (replaces a previous one).
        :param loss_percent: Random loss of incoming packets, 0 to 100.
        """
        _run(
            "tc", "qdisc", "replace", "dev", self._outside, "root", "tbf",
            "rate", f"{rate_kbit}kbit", "burst", "16kb", "latency", "300ms",
        )  # fmt: skip
        self._unset_loss()
        if loss_percent:
            rules = (
                f"table inet {_SHAPE_TABLE} {{\n"
                "  chain inbound { type filter hook input priority 0; policy accept;\n"
                f'    iifname "{self._link}" counter;\n'
                f'    iifname "{self._link}" numgen random mod 100 < {loss_percent}'
                " counter drop; }\n"
                "}\n"
            )
            subprocess.run(
                ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
                input=rules.encode(),
                check=True,
                capture_output=True,
                timeout=30,
            )

    def loss_counted(self) -> tuple[int, int]:
        """Packets that reached the browser's link, and those of them the random loss dropped,
        since :meth:`shape_downlink` (both 0 without loss)."""
        listed = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-j", "list", "table", "inet", _SHAPE_TABLE],
            capture_output=True,
            timeout=30,
        )
        if listed.returncode != 0:
            return 0, 0
        counters = [
            expression["counter"]["packets"]
            for item in json.loads(listed.stdout)["nftables"]
            for expression in item.get("rule", {}).get("expr", [])
            if "counter" in expression
        ]
        return counters[0], counters[1]

    def unshape(self) -> None:
        """Lift the rate limit and the loss of :meth:`shape_downlink`."""
        subprocess.run(
            ["tc", "qdisc", "del", "dev", self._outside, "root"], capture_output=True, timeout=30
        )
        self._unset_loss()

    def _unset_loss(self) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "delete", "table", "inet", _SHAPE_TABLE],
            capture_output=True,
            timeout=30,
        )


@contextmanager
def own_network(folder: Path, host_number: int = 2) -> Iterator[OwnNetwork]:
    """
    A namespace for one browser, joined to the bridge (created on first use) at 10.77.0.N.

    :param folder: Where the Chromium wrapper is written.
    :param host_number: N, the last byte of the browser's address (2..254, one per browser).
    """
    _ensure_bridge()
    name = f"tc-{secrets.token_hex(4)}"
    outside = f"tcv{secrets.token_hex(3)}"
    address = f"10.77.0.{host_number}"
    _run("ip", "netns", "add", name)
    try:
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", name)
        _run("ip", "link", "set", outside, "master", BRIDGE)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "-n", name, "link", "set", "lo", "up")
        _run("ip", "-n", name, "addr", "add", f"{address}/{PREFIX}", "dev", "eth0")
        _run("ip", "-n", name, "link", "set", "eth0", "up")
        _run("ip", "-n", name, "route", "add", "default", "via", GATEWAY)
        wrapper = folder / f"chromium-{name}"
        wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {name} /usr/bin/chromium "$@"\n')
        wrapper.chmod(0o755)
        yield OwnNetwork(name, address, wrapper, outside)
    finally:
        subprocess.run(["ip", "link", "del", outside], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
