"""The client's address behind proxies: X-Forwarded-For counts only as far as trusted hops go."""

from __future__ import annotations

import ipaddress

import pytest

from signaling.addresses import forwarded_client

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.9", ["203.0.113.7"], "198.51.100.9"),  # not through a proxy: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # a proxy that says nothing
        ("10.0.0.2", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.2", ["1.2.3.4, 203.0.113.7, 10.0.0.9"], "203.0.113.7"),  # spoofed left part
        ("10.0.0.2", ["1.2.3.4", "203.0.113.7"], "203.0.113.7"),  # several headers, in order
        ("10.0.0.2", ["203.0.113.7, not-an-address, 10.0.0.9"], "10.0.0.9"),  # garbage stops it
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.0.0.2", ["10.0.0.7, 10.0.0.8"], "10.0.0.7"),  # only proxies: the first of them
    ],
)
def test_the_client_is_the_nearest_hop_no_trusted_proxy_vouches_for(
    peer: str, forwarded_for: list[str], client: str
) -> None:
    assert forwarded_client(peer, forwarded_for, PROXIES) == client
