"""Creating the server's peer connections and feeding them the remote ICE candidates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.sdp import candidate_from_sdp

from .aiortc_hooks import bind_in_port_range
from .errors import InvalidCandidate


@dataclass(frozen=True)
class MediaConfig:
    """
    How this process's media reaches the network.

    :param addresses: Addresses ICE host candidates are gathered on (LiveKit's node IP),
        loopback included; empty: every address aioice finds, loopback excluded.
    :param ice_servers: STUN/TURN servers as ``RTCIceServer`` dictionaries
        (``urls``, optional ``username`` and ``credential``); empty: none at all.
    :param packet_inlet: Take publishers' RTP at the packet level (:mod:`media.inlet`, the
        default); False: through aiortc's receiver (``bench/sfu.py --arms receive`` compares
        the two).
    :param ports: The UDP ports (first, last) ICE host candidates bind; None: any.
    :param voice_bitrate: The Opus bit rate (bit/s) publishers are asked for
        (``maxaveragebitrate``); 0: the browser's own.
    """

    addresses: list[str] = field(default_factory=list)
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    packet_inlet: bool = True
    ports: tuple[int, int] | None = None
    voice_bitrate: int = 0


def create_peer_connection(config: MediaConfig) -> RTCPeerConnection:
    """
    Create a server peer connection: one transport for all media, only our ICE servers.

    :param config: The media configuration.
    """
    servers = [
        RTCIceServer(
            urls=server["urls"],
            username=server.get("username"),
            credential=server.get("credential"),
        )
        for server in config.ice_servers
    ]
    # An explicit list, even empty: aiortc would otherwise ask Google's STUN server.
    pc = RTCPeerConnection(
        RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )
    if config.ports is not None:
        bind_in_port_range(pc, config.ports)
    return pc


def parse_candidate(
    candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
) -> RTCIceCandidate | None:
    """
    Parse a trickled remote candidate; None when it is one we must not use.

    mDNS (``.local``) addresses would make aioice query multicast, and aioice only
    speaks UDP: such candidates are refused rather than added.

    :param candidate: The ``candidate:`` attribute value, with or without that prefix.
    :param sdp_mid: The media section's mid.
    :param sdp_mline_index: The media section's index.
    :raises InvalidCandidate: when it cannot be parsed.
    """
    if sdp_mid is None and sdp_mline_index is None:
        raise InvalidCandidate("sdpMid or sdpMLineIndex is required")
    text = candidate.strip().removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError) as exc:
        raise InvalidCandidate(f"cannot parse candidate: {candidate!r}") from exc
    if parsed.ip.lower().endswith(".local") or parsed.protocol.lower() != "udp":
        return None
    parsed.sdpMid = sdp_mid
    parsed.sdpMLineIndex = sdp_mline_index
    return parsed


class RemoteCandidates:
    """
    Feeds trickled remote candidates to a peer connection, holding them until its
    remote description is set (a candidate may overtake the offer or answer).

    :param pc: The peer connection.
    """

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        self._held: list[RTCIceCandidate | None] = []

    async def add(self, candidate: RTCIceCandidate | None) -> None:
        """
        Add a candidate, or signal the end of candidates with None.

        :param candidate: A parsed candidate or None.
        """
        if self._pc.remoteDescription is None:
            self._held.append(candidate)
        else:
            await self._pc.addIceCandidate(candidate)

    async def flush(self) -> None:
        """Add the held candidates; call it after setting a remote description."""
        held, self._held = self._held, []
        for candidate in held:
            await self._pc.addIceCandidate(candidate)
