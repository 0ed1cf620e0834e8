"""TURN credentials of a join: coturn's use-auth-secret shape, their expiry, whose servers."""

from __future__ import annotations

import subprocess
import time

from rooms.hospitals import IceSettings
from rooms.turn import IceDefaults, join_ice, turn_credentials

DEFAULTS = IceDefaults(
    servers=[{"urls": "stun:stun.region.example:3478"}],
    turn_urls=["turn:turn.region.example:3478?transport=udp", "turns:turn.region.example:443"],
    turn_secret="region-static-auth-secret",
    credential_seconds=4 * 3600,
)


def openssl_hmac_sha1_base64(secret: str, message: str) -> str:
    """The credential as OpenSSL computes it (code we did not write)."""
    digest = subprocess.run(
        ["openssl", "dgst", "-sha1", "-hmac", secret, "-binary"],
        input=message.encode(),
        capture_output=True,
        check=True,
    ).stdout
    encoded = subprocess.run(
        ["openssl", "base64", "-A"], input=digest, capture_output=True, check=True
    ).stdout
    return encoded.decode().strip()


def test_credentials_name_their_expiry_and_participant_and_are_signed_with_the_secret() -> None:
    credentials = turn_credentials("s3cret", "participant-7", 1_800_000_000)
    assert credentials.username == "1800000000:participant-7"
    assert credentials.expires_at == 1_800_000_000
    assert credentials.credential == openssl_hmac_sha1_base64("s3cret", "1800000000:participant-7")
    assert (
        credentials.credential
        != turn_credentials("other", "participant-7", 1_800_000_000).credential
    )


def test_a_join_gets_turns_first_and_credentials_valid_for_the_consult_and_a_margin() -> None:
    scheduled_later = time.time() + 3600
    ice = join_ice(DEFAULTS, None, "p-1", scheduled_later)
    turn, stun = ice.servers
    assert turn["urls"] == [
        "turns:turn.region.example:443",
        "turn:turn.region.example:3478?transport=udp",
    ]
    expiry, participant = turn["username"].split(":")
    assert participant == "p-1"
    assert int(expiry) == int(scheduled_later) + 4 * 3600
    assert turn["credential"] == openssl_hmac_sha1_base64(
        "region-static-auth-secret", turn["username"]
    )
    assert stun == {"urls": "stun:stun.region.example:3478"}
    assert ice.transport_policy == "all"


def test_a_hospitals_ice_settings_replace_the_environments() -> None:
    own = IceSettings(
        stun_urls=["stun:stun.east.example"],
        turn_urls=["turn:turn.east.example"],
        turn_secret="east-secret",
        relay_only=True,
    )
    ice = join_ice(DEFAULTS, own, "p-2", time.time())
    turn, stun = ice.servers
    assert turn["urls"] == ["turn:turn.east.example"]
    assert turn["credential"] == openssl_hmac_sha1_base64("east-secret", turn["username"])
    assert stun == {"urls": ["stun:stun.east.example"]}
    assert ice.transport_policy == "relay"
    # Its own TURN server without a secret of its own: the environment's secret signs.
    shared = IceSettings(turn_urls=["turn:turn.east.example"])
    [turn] = join_ice(DEFAULTS, shared, "p-2", time.time()).servers
    assert turn["credential"] == openssl_hmac_sha1_base64(
        "region-static-auth-secret", turn["username"]
    )


def test_without_a_turn_secret_no_turn_server_is_given() -> None:
    bare = IceDefaults(
        servers=[], turn_urls=["turn:turn.example"], turn_secret=None, credential_seconds=3600
    )
    assert join_ice(bare, None, "p-3", time.time()).servers == []
