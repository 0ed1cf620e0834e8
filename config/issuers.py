"""The trusted issuers file: which identity providers a region trusts, and for which hospitals.

``TELECONSULT_TRUSTED_ISSUERS`` names a JSON file (docs/security.md, "Trusted issuers")::

    {"issuers": [
      {"iss": "https://idp.north.example", "audience": "teleconsult", "algorithm": "RS256",
       "jwks_url": "https://idp.north.example/jwks.json", "hospitals": ["north-1", "north-2"]},
      {"iss": "south-his", "algorithm": "HS256", "secret": "…32 bytes or more…",
       "hospitals": ["south"]}
    ]}

Each issuer has exactly one key: ``secret`` (HS256), ``public_key`` or ``public_key_file`` (PEM,
RS256/ES256) or ``jwks_url`` (RS256/ES256).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: The shortest HS256 secret accepted: RFC 7518 asks for a key as long as the hash (256 bits).
MIN_HS256_SECRET_BYTES = 32


class ConfigurationError(ValueError):
    """The deployment's configuration cannot work; the message says what to change."""


def check_hs256_secret(secret: str, where: str) -> None:
    """Refuse an HS256 secret shorter than :data:`MIN_HS256_SECRET_BYTES`.

    :raises ConfigurationError: naming ``where`` the secret came from.
    """
    if len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        raise ConfigurationError(
            f"{where}: an HS256 secret needs at least {MIN_HS256_SECRET_BYTES} bytes "
            f"(this one has {len(secret.encode())}); generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )


class TrustedIssuer(BaseModel):
    """One identity provider: how its tokens are checked, and the hospitals it may assert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    audience: str = "teleconsult"
    algorithm: Literal["HS256", "RS256", "ES256"]
    secret: str | None = None
    public_key: str | None = None
    public_key_file: Path | None = None
    jwks_url: str | None = None
    hospitals: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        given = ("secret", "public_key", "public_key_file", "jwks_url")
        keys = [name for name in given if getattr(self, name)]
        if len(keys) != 1:
            raise ValueError("give exactly one of secret, public_key, public_key_file, jwks_url")
        if (self.algorithm == "HS256") != (keys[0] == "secret"):
            raise ValueError("HS256 takes a secret; RS256 and ES256 take a public key or JWKS")
        return self

    def key(self) -> str | None:
        """The HS256 secret or PEM public key; ``None`` when the keys come from ``jwks_url``."""
        if self.public_key_file is not None:
            return self.public_key_file.read_text()
        return self.secret or self.public_key


class TrustedIssuersFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid")

    issuers: list[TrustedIssuer] = Field(min_length=1)


def load_trusted_issuers(path: Path) -> list[TrustedIssuer]:
    """Read and check the trusted issuers file.

    :raises ConfigurationError: when the file is missing, not JSON, or describes issuers wrongly.
    """
    where = f"TELECONSULT_TRUSTED_ISSUERS ({path})"
    try:
        document = json.loads(path.read_text())
        issuers = TrustedIssuersFile.model_validate(document).issuers
    except (OSError, ValueError) as exc:
        detail = (
            "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_input=False)
            )
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        raise ConfigurationError(f"{where}: {detail}") from exc
    names = [issuer.iss for issuer in issuers]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{where}: an issuer is listed twice")
    for issuer in issuers:
        if issuer.secret is not None:
            check_hs256_secret(issuer.secret, f"{where}, issuer {issuer.iss}")
    return issuers
