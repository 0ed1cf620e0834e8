"""A participant of a clustered deployment: it knows several node URLs (as a browser behind a
failing-over load balancer reaches some live node), follows a join's redirect to the consult's
media node, and comes back by itself after its node died or restarted: resume, new media."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import socketio

from config.settings import Settings
from tests.conftest import clean_environ
from tests.integration.live import SignalingClient, connect
from tests.integration.media_client import MediaClient


def serve_environment(settings: Settings) -> dict[str, str]:
    """The environment of a ``teleconsult serve`` subprocess that reads ``settings``."""
    env = {**clean_environ()}
    for name, value in settings.model_dump(mode="json", exclude_defaults=True).items():
        env[f"TELECONSULT_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env["TELECONSULT_MEDIA_ADDRESSES"] = ",".join(settings.media_addresses)
    return env


#: How long one attempt to come back through one node may take before the next node is tried.
ATTEMPT_SECONDS = 6


class ClusterParticipant:
    """One participant's signaling and media across the nodes of a cluster.

    :param urls: the nodes it may reach, in its order of preference.
    :param token: what it connects with the first time (its link or identity token).
    :param consult_id: the consult.
    """

    def __init__(self, urls: list[str], token: str, consult_id: str) -> None:
        self.urls = urls
        self.token = token
        self.consult_id = consult_id
        self.signaling: SignalingClient | None = None
        self.media: MediaClient | None = None
        #: The node URL each successful join or resume took place on, in order.
        self.served_by: list[str] = []
        self.resume_token: str | None = None
        self._publishing = False
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    async def join(self, first_url: str) -> dict[str, Any]:
        """Join through ``first_url``, following the redirect to the media node."""
        return await self._arrive(first_url, "join", self.token)

    async def _arrive(self, url: str, event: str, token: str | None) -> dict[str, Any]:
        for _ in range(3):  # a redirect, and at most one more placement race
            resume = self.resume_token if event == "resume" else None
            signaling = await connect(url, None if resume else token, resume_token=resume)
            payload = {"consult_id": self.consult_id}
            if resume:
                payload["resume_token"] = resume
            ack = await signaling.call(event, payload)
            if ack["ok"]:
                self._adopt(signaling, url, ack)
                return ack
            await signaling.close()
            error = ack["error"]
            if error["code"] != "media_on_other_node":
                raise AssertionError(f"{event} through {url} refused: {error['code']}")
            url = error["details"]["node_url"]
        raise AssertionError("no node took the join")

    def _adopt(self, signaling: SignalingClient, url: str, ack: dict[str, Any]) -> None:
        self.signaling = signaling
        self.served_by.append(url)
        self.resume_token = ack["resume_token"]
        client: socketio.AsyncClient = signaling.client
        client.on("resume_token", self._on_resume_token)
        client.on("disconnect", self._on_disconnect)

    def _on_resume_token(self, data: dict[str, Any]) -> None:
        self.resume_token = data["resume_token"]
        assert self.signaling is not None
        self.signaling.events["resume_token"].put_nowait(data)

    def _on_disconnect(self, *_: Any) -> None:
        if not self._closed and self._reconnecting is None:
            self._reconnecting = asyncio.create_task(self._come_back())

    async def _come_back(self) -> None:
        """Reach some live node with the resume token, follow it to the media node, and set up
        new peer connections (the lost ones went with the dead node)."""
        try:
            while not self._closed:
                for url in self.urls:
                    # A dead node refuses the connection; one still starting may refuse it too.
                    with contextlib.suppress(
                        socketio.exceptions.ConnectionError, AssertionError, TimeoutError
                    ):
                        # A node shutting down may accept and never answer: try the next soon.
                        async with asyncio.timeout(ATTEMPT_SECONDS):
                            await self._arrive(url, "resume", None)
                        if self._publishing:
                            await self._restart_media()
                        return
                await asyncio.sleep(0.3)
        finally:
            self._reconnecting = None

    async def _restart_media(self) -> None:
        assert self.signaling is not None
        if self.media is not None:
            await self.media.close()
        self.media = MediaClient(self.signaling)
        await self.media.publish(restart=True)

    async def call(self, event: str, payload: Any = None) -> dict[str, Any]:
        """Send an event on the current connection; its ack."""
        assert self.signaling is not None
        return await self.signaling.call(event, payload)

    async def next(self, event: str, timeout: float = 10) -> Any:
        """The next payload of ``event`` on the current connection."""
        assert self.signaling is not None
        return await self.signaling.next(event, timeout)

    async def publish(self) -> None:
        """Publish camera and microphone, and receive the others."""
        assert self.signaling is not None
        self.media = MediaClient(self.signaling)
        self._publishing = True
        await self.media.publish()

    async def receives(self, participant_id: str, kind: str, frames: int, timeout: float) -> None:
        """Wait until ``frames`` more of ``kind`` arrived from a participant on the media
        connections open now or later (a restart starts a new count)."""
        async with asyncio.timeout(timeout):
            while True:
                media = self.media
                if media is not None and self._reconnecting is None:
                    start = media.received[(participant_id, kind)]
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(3):
                            while media.received[(participant_id, kind)] < start + frames:  # noqa: ASYNC110
                                await asyncio.sleep(0.05)
                        if media is self.media:
                            return
                await asyncio.sleep(0.1)

    async def reconnected(self, timeout: float) -> None:
        """Wait until a reconnection in progress (if any) is over."""
        async with asyncio.timeout(timeout):
            await asyncio.sleep(0.05)
            while self._reconnecting is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Leave for good."""
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        async with asyncio.timeout(10):
            if self.media is not None:
                await self.media.close()
            if self.signaling is not None and self.signaling.client.connected:
                await self.signaling.close()
