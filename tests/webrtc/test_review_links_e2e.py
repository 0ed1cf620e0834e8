"""The review page keeps a recording playable past the lifetime of its signed playback links.

The server signs playback links for a few seconds here (TELECONSULT_RECORDING_LINK_TTL_SECONDS);
the page fetches fresh ones before they expire and swaps them into the player without losing
the position, so that seeking late in a long recording still reaches the server with a valid
link.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from playwright.async_api import Page, expect

from tests.webrtc.conftest import TeleconsultServer
from tests.webrtc.test_recording_e2e import only_recording, start_recording_with_consent
from tests.webrtc.visit_flow import HOSPITAL, NewContext, schedule_visit, visit_in_progress

pytestmark = [pytest.mark.webrtc, pytest.mark.timeout(150)]

LINK_SECONDS = 8
RECORD_SECONDS = 4.0

PLAYER = "document.getElementById('player')"


async def player(page: Page, expression: str) -> object:
    """Evaluate `expression` about the player (the page's CSP forbids wait_for_function)."""
    return await page.evaluate(f"(() => {{ const p = {PLAYER}; return {expression}; }})()")


def expires_at(link: str) -> float:
    """When a playback link expires (epoch seconds): the ``exp`` of its signed access value."""
    body = parse_qs(urlsplit(link).query)["access"][0].split(".")[0]
    return float(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["exp"])


async def status_of(server: TeleconsultServer, link: str) -> int:
    """The HTTP status of fetching the first bytes of a playback link."""
    url = link if link.startswith("http") else f"{server.base_url}{link}"
    async with aiohttp.ClientSession() as http, http.get(url, headers={"Range": "bytes=0-15"}) as r:
        return r.status


async def test_the_review_player_gets_fresh_links_before_the_old_ones_expire(
    server_factory: Callable[..., Awaitable[TeleconsultServer]], new_context: NewContext
) -> None:
    server = await server_factory(TELECONSULT_RECORDING_LINK_TTL_SECONDS=str(LINK_SECONDS))
    coordinator = await asyncio.to_thread(server.token, "coord-1", "coordinator", HOSPITAL)
    consult = await schedule_visit(server, coordinator)
    doctor, patient, _ = await visit_in_progress(new_context, consult)
    await start_recording_with_consent(doctor, patient)
    await asyncio.sleep(RECORD_SECONDS)
    await doctor.get_by_role("button", name="Stop recording", exact=True).click()
    await expect(doctor.locator("#recording-indicator")).to_be_hidden()

    reviewer = await asyncio.to_thread(server.token, "rev-1", "reviewer", HOSPITAL)
    await only_recording(server, reviewer)  # the review rendition is being made
    context = await new_context()
    page = await context.new_page()
    await page.goto(f"{server.base_url}/review?token={reviewer}")
    await page.get_by_role("button", name="Open Follow-up of hypertension", exact=False).click()
    await expect(page.locator("#player")).to_have_attribute(
        "data-file", "review.webm", timeout=60_000
    )
    first_link = str(await player(page, "p.src"))
    await player(page, "(p.muted = true, p.play(), true)")

    # A fresh link replaces the first before it expires; the player keeps its place and plays.
    position = 0.0
    async with asyncio.timeout(LINK_SECONDS + 10):
        while (await player(page, "p.src")) == first_link:
            position = float(await player(page, "p.currentTime"))
            await asyncio.sleep(0.1)
    assert time.time() < expires_at(first_link)
    async with asyncio.timeout(10):
        while float(await player(page, "p.currentTime")) < position:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert await player(page, "p.error") is None

    # Past the first link's lifetime: it is refused, the page's current one works, and a seek
    # back to the start plays (the short recording has ended by then).
    await asyncio.sleep(max(0.0, expires_at(first_link) + 1 - time.time()))
    assert await status_of(server, first_link) in (401, 403)
    assert await status_of(server, str(await player(page, "p.src"))) in (200, 206)
    await player(page, "(p.currentTime = 0.2, p.play(), true)")
    async with asyncio.timeout(10):
        while float(await player(page, "p.currentTime")) <= 0.6:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert await player(page, "p.error") is None
