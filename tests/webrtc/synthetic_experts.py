"""Synthetic conference experts in a process of their own, driven by a test over a pipe.

The experts (:class:`tests.webrtc.synthetic.SyntheticParticipant`) run here on their own
event loop, so that their packets do not wait behind Playwright and the test's checks, and
so that the test's process is not what starves them. The test drives the process with
:class:`SyntheticExperts`: one JSON command per line on its stdin, one JSON reply per line
on its stdout (``python -m tests.webrtc.synthetic_experts``, from the repository root).

Commands: ``{"do": "connect", "url": ..., "experts": [{"sub", "token", "name", "decode"}]}``,
``{"do": "join", "consult_id": ..., "subs": [...]}`` (replies once all have published),
``{"do": "report"}`` and ``{"do": "close"}``. Replies carry ``"ok"``, and ``"error"`` when
a command failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from media.aiortc_hooks import route_retransmissions, tolerate_consent_delays, use_host_addresses
from tests.webrtc.synthetic import (
    EncodedClip,
    Received,
    SyntheticParticipant,
    encode_clip,
)

logger = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT = 60.0
#: Server events a report returns, all of them since the expert connected.
REPORTED_EVENTS = ("participant_updated", "participant_left")


@dataclass(frozen=True)
class Expert:
    """Who a synthetic expert is.

    :param sub: Their subject, used to name them in commands.
    :param token: Their join token.
    :param name: Their display name.
    :param decode: Decode what they receive.
    """

    sub: str
    token: str
    name: str
    decode: bool = False


@dataclass
class ExpertReport:
    """What one synthetic expert has received so far.

    :param participant_id: Their participant id (empty before joining).
    :param decode: Whether they decode what they receive.
    :param joined_at: ``time.monotonic()`` when they started joining (the clock is
        system-wide, so the test may compare it with its own).
    :param milestones: When they got through the steps of joining (``joined``,
        ``published``, ``offered``, ``answered``: see ``SyntheticParticipant.join``).
    :param received: Per ``(participant id, source)`` of a sender.
    :param audio_packets: Audio packets received, from everyone.
    :param events: Payloads of ``REPORTED_EVENTS`` received, per event name.
    """

    participant_id: str
    decode: bool
    joined_at: float
    milestones: dict[str, float]
    received: dict[tuple[str, str], Received]
    audio_packets: int
    events: dict[str, list[Any]] = field(default_factory=dict)

    def frames_from(self, participant_id: str, source: str = "camera") -> int:
        """Usable video frames received so far from a participant's source."""
        got = self.received.get((participant_id, source))
        return got.frames if got else 0

    def first_frame_after_join(self, participant_id: str) -> float | None:
        """Seconds from the start of joining to the first camera frame of a participant."""
        got = self.received.get((participant_id, "camera"))
        if got is None or got.first_at is None:
            return None
        return got.first_at - self.joined_at


class SyntheticExperts:
    """The test's handle on a process of synthetic experts.

    :param process: The running ``python -m tests.webrtc.synthetic_experts``.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, url: str, experts: list[Expert]) -> SyntheticExperts:
        """Start the process and connect every expert's Socket.IO client (not joined yet).

        :param url: The server's base URL.
        :param experts: Who runs in this process.
        """
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.webrtc.synthetic_experts",
            cwd=REPOSITORY,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        handle = cls(process)
        try:
            await handle._call(
                {"do": "connect", "url": url, "experts": [dataclasses.asdict(e) for e in experts]}
            )
        except BaseException:
            await handle.close()
            raise
        return handle

    @property
    def pid(self) -> int:
        """The process id (to measure its CPU time)."""
        return self.process.pid

    async def join(self, consult_id: str, subs: list[str]) -> dict[str, str]:
        """Join the consult with these experts at once; returns their participant ids.

        :param consult_id: The consult.
        :param subs: Experts of this process, by subject.
        """
        reply = await self._call({"do": "join", "consult_id": consult_id, "subs": subs})
        return reply["joined"]

    async def report(self) -> dict[str, ExpertReport]:
        """What every expert of the process has received so far, by subject."""
        reply = await self._call({"do": "report"})
        reports = {}
        for sub, data in reply["experts"].items():
            received = {
                (r.pop("participant_id"), r.pop("source")): Received(**r) for r in data["received"]
            }
            reports[sub] = ExpertReport(**{**data, "received": received})
        return reports

    async def close(self) -> None:
        """Close every expert's connections and end the process."""
        if self.process.returncode is None:
            try:
                await self._call({"do": "close"})
                await asyncio.wait_for(self.process.wait(), 10)
            except (OSError, RuntimeError, TimeoutError):
                self.process.kill()
                await self.process.wait()

    async def _call(self, command: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(json.dumps(command).encode() + b"\n")
        await stdin.drain()
        line = await asyncio.wait_for(stdout.readline(), REPLY_TIMEOUT)
        if not line:
            raise RuntimeError(f"the synthetic experts' process exited during {command['do']}")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"synthetic experts: {command['do']} failed: {reply['error']}")
        return reply


class _ExpertsProcess:
    """The process's side: the experts, and the commands that drive them.

    :param clip: The media every expert sends.
    """

    def __init__(self, clip: EncodedClip) -> None:
        self._clip = clip
        self._experts: dict[str, SyntheticParticipant] = {}
        self._events: dict[str, dict[str, list[Any]]] = {}

    async def connect(self, url: str, experts: list[dict[str, Any]]) -> dict[str, Any]:
        for data in experts:
            expert = Expert(**data)
            self._experts[expert.sub] = await SyntheticParticipant.connect(
                url, expert.token, expert.name, self._clip, decode=expert.decode
            )
            self._events[expert.sub] = {name: [] for name in REPORTED_EVENTS}
        return {}

    async def join(self, consult_id: str, subs: list[str]) -> dict[str, Any]:
        await asyncio.gather(*(self._experts[sub].join(consult_id) for sub in subs))
        return {"joined": {sub: self._experts[sub].participant_id for sub in subs}}

    async def report(self) -> dict[str, Any]:
        experts = {}
        for sub, expert in self._experts.items():
            events = self._events[sub]
            for name in REPORTED_EVENTS:
                events[name].extend(expert.events(name))
            experts[sub] = {
                "participant_id": expert.participant_id,
                "decode": expert.decode,
                "joined_at": expert.joined_at,
                "milestones": expert.milestones,
                "audio_packets": expert.audio_packets,
                "received": [
                    {"participant_id": pid, "source": source, **dataclasses.asdict(got)}
                    for (pid, source), got in expert.received.items()
                ],
                "events": events,
            }
        return {"experts": experts}

    async def close(self) -> dict[str, Any]:
        await asyncio.gather(
            *(expert.close() for expert in self._experts.values()), return_exceptions=True
        )
        return {}

    async def serve(self, commands: asyncio.StreamReader, replies: TextIO) -> None:
        """Answer commands until ``close`` or the end of input."""
        while line := await commands.readline():
            command = json.loads(line)
            action = command.pop("do")
            handlers = {
                "connect": self.connect,
                "join": self.join,
                "report": self.report,
                "close": self.close,
            }
            try:
                reply = {"ok": True, **await handlers[action](**command)}
            except Exception as exc:
                logger.exception("synthetic experts: %s failed", action)
                reply = {"ok": False, "error": repr(exc)}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()
            if action == "close":
                return
        await self.close()


async def _main(replies: TextIO) -> None:
    use_host_addresses(["127.0.0.1"])
    route_retransmissions()
    # Browsers keep consent through late answers too (RFC 7675's 30 s).
    tolerate_consent_delays()
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    await _ExpertsProcess(encode_clip()).serve(commands, replies)


def main() -> None:
    """Serve the test's commands; stdout carries only the replies."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt replies
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_main(replies))


if __name__ == "__main__":
    main()
