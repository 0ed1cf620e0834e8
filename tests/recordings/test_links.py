"""Playback links: one viewer, one recording, a few minutes, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from recordings.links import PlaybackLinks
from rooms.errors import TokenExpired, TokenInvalid
from rooms.identity import Identity, Role

REVIEWER = Identity("rev-1", "Quality Reviewer", Role.REVIEWER, "h-east")


def test_a_link_stands_for_the_viewer_it_was_signed_for() -> None:
    links = PlaybackLinks("secret", ttl_seconds=300)
    access = links.sign(REVIEWER, "rec-1")
    assert links.verify(access, "rec-1") == REVIEWER


def test_a_link_opens_only_its_own_recording() -> None:
    links = PlaybackLinks("secret", ttl_seconds=300)
    with pytest.raises(TokenInvalid):
        links.verify(links.sign(REVIEWER, "rec-1"), "rec-2")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda access: "x" + access,
        lambda access: access.split(".")[0],
        lambda access: PlaybackLinks("another deployment", 300).sign(REVIEWER, "rec-1"),
    ],
    ids=["forged", "unsigned", "other-secret"],
)
def test_a_forged_link_is_refused(tamper: Callable[[str], str]) -> None:
    links = PlaybackLinks("secret", ttl_seconds=300)
    access = links.sign(REVIEWER, "rec-1")
    with pytest.raises(TokenInvalid):
        links.verify(tamper(access), "rec-1")


def test_an_old_link_has_expired() -> None:
    links = PlaybackLinks("secret", ttl_seconds=-5)
    with pytest.raises(TokenExpired):
        links.verify(links.sign(REVIEWER, "rec-1"), "rec-1")
