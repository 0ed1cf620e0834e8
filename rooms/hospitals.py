"""Hospitals as tenants: each hospital's record (names, identity providers, record store,
recording policy, ICE servers), its stored secrets, and the cached directory the others read.

A hospital without a record behaves as the environment settings say (a single-hospital
install). Secrets (a FHIR bearer token, a SMART private key, a TURN secret) are stored encrypted
with :class:`config.secrets.SecretBox`, never returned by :meth:`HospitalProfile.public`, and put
into a profile only when a caller asks :meth:`HospitalDirectory.get` for them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from config.database import Database
from config.issuers import TrustedIssuer, check_hs256_secret
from config.secrets import SecretBox
from rooms.errors import DomainError, InvalidPayload
from rooms.models import Hospital, ensure_hospital, utcnow

#: The languages a hospital's display name is given in.
DISPLAY_LANGUAGES = ("zh-CN", "en")


class HospitalNotFound(DomainError):
    code, status = "hospital_not_found", 404


class HospitalAdminRequired(DomainError):
    """Only an administrator of the hospital, or of the region, manages its record."""

    code, status = "admin_required", 403


class SecretRequired(DomainError):
    """A record names a credential that is neither in the request nor stored already."""

    code, status = "secret_required", 422


class IssuerTaken(DomainError):
    """Another hospital's record (or the environment) already names this issuer."""

    code, status = "issuer_taken", 409


class _Record(BaseModel):
    """A part of a hospital record: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class HospitalIssuer(_Record):
    """An identity provider of the hospital: the shape of a trusted issuers file entry
    (config/issuers.py) without ``public_key_file``; it may assert this hospital only. An HS256
    ``secret`` is a secret (``None`` keeps the stored one)."""

    iss: str = Field(min_length=1, max_length=500)
    audience: str = Field(default="teleconsult", max_length=500)
    algorithm: Literal["HS256", "RS256", "ES256"]
    secret: str | None = Field(default=None, max_length=500, exclude=True)
    public_key: str | None = Field(default=None, max_length=16384)
    jwks_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    hospitals: list[str] = Field(
        default_factory=list, description="this hospital's code only (the default)"
    )

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        public = [name for name in ("public_key", "jwks_url") if getattr(self, name)]
        if self.algorithm == "HS256" and public:
            raise ValueError("HS256 takes a secret, not public_key or jwks_url")
        if self.algorithm != "HS256" and (len(public) != 1 or self.secret is not None):
            raise ValueError("RS256 and ES256 take exactly one of public_key, jwks_url")
        return self

    def trusted(self, code: str) -> TrustedIssuer:
        """The issuer as the token verifier takes it (its secret must be in the profile)."""
        return TrustedIssuer(
            iss=self.iss,
            audience=self.audience,
            algorithm=self.algorithm,
            secret=self.secret,
            public_key=self.public_key,
            jwks_url=self.jwks_url,
            hospitals=[code],
        )


class NoAuth(_Record):
    """A FHIR endpoint reached without credentials."""

    kind: Literal["none"] = "none"


class BearerAuth(_Record):
    """A FHIR endpoint reached with a static bearer token (a secret: ``None`` keeps the stored)."""

    kind: Literal["bearer"]
    token: str | None = Field(default=None, min_length=1, max_length=4096, exclude=True)


class SmartAuth(_Record):
    """SMART Backend Services: an OAuth2 client-credentials grant with a ``private_key_jwt``
    assertion signed by ``private_key_pem`` (a secret: ``None`` keeps the stored one)."""

    kind: Literal["smart"]
    token_url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    client_id: str = Field(min_length=1, max_length=200)
    private_key_pem: str | None = Field(default=None, min_length=1, max_length=16384, exclude=True)
    key_id: str | None = Field(default=None, max_length=200)
    scope: str = Field(default="system/*.write", max_length=2000)


FhirAuth = Annotated[NoAuth | BearerAuth | SmartAuth, Field(discriminator="kind")]


class SqlRecordStore(_Record):
    """Notes and prescriptions go to the SQL tables of this server's database."""

    kind: Literal["sql"] = "sql"


class FhirRecordStore(_Record):
    """Notes and prescriptions go to an HL7 FHIR R4 endpoint with its own credentials."""

    kind: Literal["fhir"]
    base_url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://")
    auth: FhirAuth = Field(default_factory=NoAuth)


#: A hospital's record store: ``{"kind": "sql"}`` or ``{"kind": "fhir", "base_url", "auth"}``.
RecordStoreSettings = Annotated[SqlRecordStore | FhirRecordStore, Field(discriminator="kind")]


class RecordingSettings(_Record):
    """The hospital's recording policy: ``None`` retention uses the environment's default."""

    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="days a recording is kept; also set by PUT /api/recording-policies",
    )
    consent: Literal["patient_or_attested", "patient_only"] = Field(
        default="patient_or_attested",
        description="whose word starts a recording: the patient's own agreement in the page, "
        "or the host's attestation of verbal consent (patient_or_attested, the default); or "
        "the patient's own agreement only (patient_only)",
    )


class IceSettings(_Record):
    """The STUN and TURN servers the hospital's participants use; empty lists use the
    environment's. TURN credentials are made per join from ``turn_secret`` (a secret: ``None``
    keeps the stored one, ``""`` removes it and the environment's secret is used)."""

    stun_urls: list[Annotated[str, Field(pattern=r"^stuns?:", max_length=500)]] = Field(
        default_factory=list, max_length=10
    )
    turn_urls: list[Annotated[str, Field(pattern=r"^turns?:", max_length=500)]] = Field(
        default_factory=list, max_length=10
    )
    turn_secret: str | None = Field(default=None, max_length=500, exclude=True)
    relay_only: bool = Field(
        default=False,
        description="browsers send media through TURN only (iceTransportPolicy relay): "
        "participants' addresses stay hidden from each other's networks",
    )


class HospitalProfile(_Record):
    """A hospital's record as an administrator writes it (``PUT /api/hospitals/{code}``)."""

    display_names: dict[str, str] = Field(
        description="the hospital's name per language: zh-CN and en"
    )
    trusted_issuers: list[HospitalIssuer] = Field(default_factory=list, max_length=10)
    record_store: RecordStoreSettings | None = Field(
        default=None, description="where its signed notes go; none: the environment's store"
    )
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    ice: IceSettings = Field(default_factory=IceSettings)

    @field_validator("display_names")
    @classmethod
    def _known_languages(cls, names: dict[str, str]) -> dict[str, str]:
        unknown = set(names) - set(DISPLAY_LANGUAGES)
        if unknown or not names:
            raise ValueError(f"give the name in {' and '.join(DISPLAY_LANGUAGES)}")
        if any(not name.strip() or len(name) > 200 for name in names.values()):
            raise ValueError("a name is 1 to 200 characters")
        return names

    def secret_slots(self) -> dict[str, tuple[BaseModel, str]]:
        """Where this record keeps secrets: name → (part, attribute)."""
        slots: dict[str, tuple[BaseModel, str]] = {"turn_secret": (self.ice, "turn_secret")}
        for issuer in self.trusted_issuers:
            if issuer.algorithm == "HS256":
                slots[f"issuer_secret:{issuer.iss}"] = (issuer, "secret")
        store = self.record_store
        if isinstance(store, FhirRecordStore) and isinstance(store.auth, BearerAuth):
            slots["fhir_bearer_token"] = (store.auth, "token")
        if isinstance(store, FhirRecordStore) and isinstance(store.auth, SmartAuth):
            slots["fhir_smart_private_key"] = (store.auth, "private_key_pem")
        return slots

    def public(self, code: str, stored: set[str]) -> dict[str, Any]:
        """The record as the API shows it: secrets left out, ``<name>_set`` says if stored."""
        shown = self.model_dump(mode="json")
        shown["code"] = code
        store = shown["record_store"] or {}
        if "fhir_bearer_token" in stored and store.get("auth", {}).get("kind") == "bearer":
            store["auth"]["token_set"] = True
        if "fhir_smart_private_key" in stored and store.get("auth", {}).get("kind") == "smart":
            store["auth"]["private_key_set"] = True
        shown["ice"]["turn_secret_set"] = "turn_secret" in stored
        for issuer in shown["trusted_issuers"]:
            if issuer["algorithm"] == "HS256":
                issuer["secret_set"] = f"issuer_secret:{issuer['iss']}" in stored
        return shown


@dataclass(frozen=True)
class HospitalEntry:
    """A hospital's stored record: the profile (secrets only when asked for), which secrets
    are stored, and who changed it last."""

    code: str
    profile: HospitalProfile
    secrets_stored: frozenset[str]

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (no secret)."""
        return self.profile.public(self.code, set(self.secrets_stored))


class HospitalDirectory:
    """Reads and writes hospital records; reads are cached for ``cache_seconds`` (a write in
    this process is seen at once, a write in another process within that time).

    Callers authorise (:func:`rooms.identity.administers`) and audit.

    :param database: where records are stored (the ``hospitals`` table).
    :param box: encrypts and decrypts the stored secrets.
    :param cache_seconds: how long a read record is reused.
    :param reserved_issuers: issuers of the environment (settings and trusted issuers file),
        which no hospital record may name.
    """

    def __init__(
        self,
        database: Database,
        box: SecretBox,
        cache_seconds: float = 10.0,
        reserved_issuers: frozenset[str] = frozenset(),
    ) -> None:
        self._database = database
        self._box = box
        self._cache_seconds = cache_seconds
        self._reserved_issuers = reserved_issuers
        self._cache: dict[str, tuple[float, _StoredRecord | None]] = {}
        #: Bumped by every write in this process: watchers (the token verifier) reload.
        self.generation = 0

    async def get(self, code: str, *, with_secrets: bool = False) -> HospitalEntry | None:
        """The hospital's record, or ``None`` when it has none (the environment's defaults).

        :param with_secrets: put the decrypted secrets into the profile (for the code that
            uses them: the record store, TURN credentials); never for an API answer.
        """
        row = await self._row(code)
        if row is None or row.profile is None:
            return None
        return self._entry(row, with_secrets)

    async def all(self, *, with_secrets: bool = False) -> list[HospitalEntry]:
        """Every hospital that has a record, by code (secrets only when asked for)."""
        async with self._database.sessions() as session:
            rows = await session.scalars(
                select(Hospital).where(Hospital.profile.is_not(None)).order_by(Hospital.id)
            )
            return [self._entry(_StoredRecord.of(row), with_secrets) for row in rows]

    async def put(self, code: str, profile: HospitalProfile, by: str) -> HospitalEntry:
        """Create or replace the hospital's record; a secret the profile leaves ``None`` keeps
        the stored one (``""`` removes the TURN secret).

        :raises InvalidPayload: for an issuer that asserts another hospital, or a key file.
        :raises IssuerTaken: for an issuer another record or the environment names.
        :raises SecretRequired: for a credential neither given nor stored.
        """
        await self._check_issuers(code, profile)
        async with self._database.transaction() as session:
            await ensure_hospital(session, code, _name_of(profile, code))
            row = await session.get(Hospital, code, populate_existing=True)
            assert row is not None
            stored: dict[str, str] = dict(row.secrets or {})
            kept: dict[str, str] = {}
            for name, (part, attribute) in profile.secret_slots().items():
                given = getattr(part, attribute)
                if given:
                    kept[name] = self._box.encrypt(given)
                elif given is None and name in stored:
                    kept[name] = stored[name]
                elif name != "turn_secret":
                    raise SecretRequired(f"{name} is needed: give it once, it is kept after")
            row.name = _name_of(profile, code)
            row.profile = profile.model_dump(mode="json")
            row.secrets = kept
            row.updated_at, row.updated_by = utcnow(), by
        self._cache.pop(code, None)
        self.generation += 1
        return HospitalEntry(code, profile, frozenset(kept))

    async def set_retention(self, code: str, retention_days: int, by: str) -> bool:
        """Set the retention of a hospital that has a record (the recording policy route
        writes here, so the record stays the one place it is read from); False without one."""
        async with self._database.transaction() as session:
            row = await session.get(Hospital, code)
            if row is None or row.profile is None:
                return False
            profile = HospitalProfile.model_validate(row.profile)
            profile.recording.retention_days = retention_days
            row.profile = profile.model_dump(mode="json")
            row.updated_at, row.updated_by = utcnow(), by
        self._cache.pop(code, None)
        return True

    async def _check_issuers(self, code: str, profile: HospitalProfile) -> None:
        for issuer in profile.trusted_issuers:
            if not set(issuer.hospitals) <= {code}:
                raise InvalidPayload(f"issuer {issuer.iss} may assert this hospital ({code}) only")
            if issuer.secret is not None:
                try:
                    check_hs256_secret(issuer.secret, f"issuer {issuer.iss}")
                except ValueError as exc:
                    raise InvalidPayload(str(exc)) from exc
        names = [issuer.iss for issuer in profile.trusted_issuers]
        if len(set(names)) != len(names):
            raise InvalidPayload("an issuer is listed twice")
        taken = set(self._reserved_issuers)
        for other in await self.all():
            if other.code != code:
                taken.update(issuer.iss for issuer in other.profile.trusted_issuers)
        for name in names:
            if name in taken:
                raise IssuerTaken(f"issuer {name} is already trusted for other hospitals")

    async def _row(self, code: str) -> _StoredRecord | None:
        cached = self._cache.get(code)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._database.sessions() as session:
            row = await session.get(Hospital, code)
            stored = _StoredRecord.of(row) if row is not None else None
        self._cache[code] = (now + self._cache_seconds, stored)
        return stored

    def _entry(self, row: _StoredRecord, with_secrets: bool) -> HospitalEntry:
        profile = HospitalProfile.model_validate(row.profile)
        stored = row.secrets
        if with_secrets:
            for name, (part, attribute) in profile.secret_slots().items():
                if name in stored:
                    setattr(part, attribute, self._box.decrypt(stored[name]))
        return HospitalEntry(row.id, profile, frozenset(stored))


@dataclass(frozen=True)
class _StoredRecord:
    """What the ``hospitals`` table holds of one hospital (the cache keeps this, not a row)."""

    id: str
    profile: dict[str, Any] | None
    secrets: dict[str, str]

    @classmethod
    def of(cls, row: Hospital) -> _StoredRecord:
        return cls(row.id, row.profile, dict(row.secrets or {}))


def _name_of(profile: HospitalProfile, code: str) -> str:
    names = profile.display_names
    return names.get("en") or names.get("zh-CN") or code
