"""Stored secrets: encrypted at rest, readable after a key rotation, refused under a lost key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from config.secrets import SecretBox, SecretUnreadable
from rooms.identity import Identity, Role, administers


def test_ciphertext_hides_the_secret_and_decrypts_back() -> None:
    box = SecretBox([Fernet.generate_key().decode()])
    ciphertext = box.encrypt("whsec_hospital-a")
    assert "whsec_hospital-a" not in ciphertext
    assert box.decrypt(ciphertext) == "whsec_hospital-a"


def test_a_rotated_key_still_reads_old_secrets_and_rotate_moves_them() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = SecretBox([old]).encrypt("client-secret")
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(stored) == "client-secret"
    moved = rotated_box.rotate(stored)
    assert SecretBox([new]).decrypt(moved) == "client-secret"


def test_a_secret_under_a_lost_key_is_a_clear_error() -> None:
    stored = SecretBox([Fernet.generate_key().decode()]).encrypt("s")
    with pytest.raises(SecretUnreadable):
        SecretBox([Fernet.generate_key().decode()]).decrypt(stored)


@pytest.mark.parametrize(
    ("role", "hospital", "consult_id", "expected"),
    [
        (Role.ADMIN, "HA", None, True),
        (Role.ADMIN, "region", None, True),
        (Role.ADMIN, "HB", None, False),
        (Role.DOCTOR, "HA", None, False),
        (Role.ADMIN, "HA", "c1", False),
    ],
)
def test_who_administers_hospital_ha(
    role: Role, hospital: str, consult_id: str | None, expected: bool
) -> None:
    identity = Identity(sub="u", name="U", role=role, hospital=hospital, consult_id=consult_id)
    assert administers(identity, "HA", "region") is expected
