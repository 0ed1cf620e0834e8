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
