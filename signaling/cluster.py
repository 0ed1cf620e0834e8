"""This process as a node of the cluster: its heartbeat and load, where a consult's media goes,
what a dead node left behind, and consults ended elsewhere (docs/cluster.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import Gauge

from config.settings import Settings
from media import MediaHost
from recordings.service import RecordingService
from rooms.nodes import Node, NodeDirectory, NodeLoad, Placement
from rooms.views import ConsultView

logger = logging.getLogger(__name__)

NODE_CONSULTS = Gauge("teleconsult_node_consults", "Consults whose media this node hosts")
NODE_PUBLISHERS = Gauge("teleconsult_node_publishers", "Participants publishing to this node")
NODE_FORWARDED = Gauge("teleconsult_node_forwarded_streams", "Tracks this node forwards")
NODE_CPU = Gauge("teleconsult_node_cpu", "This node's process CPU, in cores, last interval")
LIVE_NODES = Gauge("teleconsult_live_nodes", "Nodes of the cluster with a current heartbeat")


class ProcessCpu:
    """The process's CPU use between two readings, in cores."""

    def __init__(self) -> None:
        self._cpu, self._wall = time.process_time(), time.monotonic()

    def read(self) -> float:
        """Cores used since the last reading."""
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6)
        self._cpu, self._wall = cpu, wall
        return round(used, 3)


class ClusterNode:
    """This process as a node: announces itself, places consults, recovers dead nodes' leavings.

    :param node_id: this process's id.
    :param settings: its URL, region, heartbeat period and the hospitals' regions.
    :param directory: the cluster's nodes (in-process without Redis: a cluster of one).
    :param media: the media this process hosts (its load).
    :param recordings: the recordings (a dead node's are recovered by a survivor).
    """

    def __init__(
        self,
        node_id: str,
        settings: Settings,
        directory: NodeDirectory,
        media: MediaHost,
        recordings: RecordingService,
    ) -> None:
        self.node_id = node_id
        self.directory = directory
        self._settings = settings
        self._media = media
        self._recordings = recordings
        self._cpu = ProcessCpu()
        self._load = NodeLoad()
        #: Called with each consult another node announced ended (the edge closes its media).
        self.ended_listeners: list[Callable[[str], Awaitable[None]]] = []
        #: The consults whose participants are seated here (the edge's signaling): their
        #: placement is renewed before any media exists (a lobby, a visit not yet published).
        self.seated_consults: Callable[[], Iterable[str]] = tuple
        #: Held while a heartbeat is written: leaving waits for it, so none lands after.
        self._announcing = asyncio.Lock()
        self._left = False

    @property
    def me(self) -> Node:
        """This node as the others see it."""
        return Node(
            self.node_id,
            self._settings.effective_node_url(),
            list(self._settings.media_addresses),
            self._settings.node_region,
            self._load,
        )

    def load(self) -> NodeLoad:
        """Measure what this node carries now (and show it in /metrics): its consults are
        those whose media it hosts or whose participants are seated here (placed, not yet
        published: their media comes next)."""
        media = self._media.load()
        consults = len(self.held_consults())
        self._load = NodeLoad(consults, media.publishers, media.forwarded, self._cpu.read())
        NODE_CONSULTS.set(media.consults)
        NODE_PUBLISHERS.set(media.publishers)
        NODE_FORWARDED.set(media.forwarded)
        NODE_CPU.set(self._load.cpu)
        return self._load

    async def announce(self) -> None:
        """One heartbeat: this node's load, and its claims on the consults it hosts or seats;
        nothing once the node left (it would come back to life in the directory)."""
        async with self._announcing:
            if self._left:
                return
            self.load()
            await self.directory.heartbeat(self.me)
            await self.directory.renew(sorted(self.held_consults()), self.me)

    def held_consults(self) -> set[str]:
        """The consults this node claims: their media is here, or participants are seated."""
        return {*self._media.consult_ids, *self.seated_consults()}

    async def keep_announcing(self) -> None:
        """Announce this node every heartbeat period, and recover what dead nodes left, until
        cancelled (a supervised job: a Redis fault raises, the supervisor runs it again)."""
        while True:
            await self.announce()
            for dead in await self.directory.dead_nodes():
                await self.recover_after(dead)
            LIVE_NODES.set(len(await self.directory.live_nodes()))
            await asyncio.sleep(self._settings.node_heartbeat_seconds)

    async def recover_after(self, dead_node_id: str) -> None:
        """Complete the recordings a dead node left unfinished (they are marked ``recovered``);
        idempotent, as recovery skips what a live node still records."""
        logger.warning("node dead: recovering its recordings", extra={"node": dead_node_id})
        recovered = await self._recordings.recover()
        logger.info("recordings recovered", extra={"node": dead_node_id, "count": len(recovered)})

    async def place(self, consult: ConsultView) -> Placement:
        """The node that hosts a consult's media, placing it (again, after a death) if needed.

        A consult taken over here from a dead node has its recording recovered first (even if
        the heartbeat job has not noticed the death yet), and a recording that ran there goes
        on here as a new one.
        """
        region = self._settings.hospital_regions.get(consult.hospital)
        placement = await self.directory.place(consult.id, self.me, region)
        if placement.taken_over_from is not None and placement.node.node_id == self.node_id:
            await self.recover_after(placement.taken_over_from)
            await self._recordings.continue_recovered(consult)
        return placement

    async def follow_ended(self) -> None:
        """Close the consults other nodes announced ended, until cancelled (supervised)."""
        async for consult_id in self.directory.ended():
            for listener in self.ended_listeners:
                await listener(consult_id)

    async def leave(self) -> None:
        """This node stops in order: the others stop placing consults here, and place the ones
        it held elsewhere, at once (its heartbeat job runs until the very end of the shutdown,
        and stops announcing it now)."""
        async with self._announcing:
            self._left = True
            await self.directory.leave(self.me, sorted(self.held_consults()))
