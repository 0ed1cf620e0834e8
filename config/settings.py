"""Settings of one deployment, read once from ``TELECONSULT_*`` environment variables."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from limits import parse_many
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class IceServer(BaseModel):
    """A STUN or TURN server, in the shape of the browser's ``RTCIceServer``."""

    urls: list[str] | str
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    """Every setting of teleconsult; each can be given as ``TELECONSULT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="TELECONSULT_", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: a SQLite file in data_dir",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// URL: Socket.IO fan-out and the room registry across processes",
    )
    public_url: str | None = Field(
        default=None, description="base URL put in join links; default http://HOST:PORT"
    )
    host: str = "127.0.0.1"
    port: int = 8080
    # Reverse proxies whose X-Forwarded-For is believed (addresses or CIDRs, comma-separated).
    trusted_proxies: Annotated[list[ipaddress.IPv4Network | ipaddress.IPv6Network], NoDecode] = (
        Field(default_factory=list)
    )

    # Identity: HS256 with a secret (generated in data_dir when not given), or a public key.
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: str | None = None
    jwt_public_key_file: Path | None = None
    jwt_private_key_file: Path | None = Field(
        default=None, description="lets `teleconsult token` mint RS256/ES256 tokens"
    )
    jwks_url: str | None = None
    jwt_key_id: str | None = Field(
        default=None, description="`kid` header of the tokens this server mints"
    )
    region_code: str = Field(
        default="region",
        description="the region's code: an admin token whose hospital is this code administers "
        "every hospital of the region",
    )
    secrets_key: str | None = Field(
        default=None,
        description="Fernet keys (comma-separated, first encrypts) for secrets stored in the "
        "database; default: generated once in data_dir. All processes of a deployment share them",
    )
    jwt_issuer: str = "teleconsult"
    jwt_audience: str = "teleconsult"
    join_token_ttl_seconds: int = 4 * 3600
    trusted_issuers: Path | None = Field(
        default=None,
        description="JSON file of further identity providers and the hospitals each may assert",
    )
    token_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="clock skew allowed on exp, nbf and iat"
    )

    # Reconnection: a participant whose connection drops keeps their seat this long; Socket.IO's
    # heartbeat notices a dead connection within ping interval + ping timeout.
    reconnect_grace_seconds: float = Field(default=30.0, gt=0)
    socket_ping_interval_seconds: float = Field(default=5.0, gt=0)
    socket_ping_timeout_seconds: float = Field(default=5.0, gt=0)

    # The cluster (with redis_url): this process as one node of it (docs/cluster.md).
    node_url: str | None = Field(
        default=None,
        description="URL clients reach this node's signaling at (a join elsewhere is sent "
        "here when this node hosts the consult's media); default: public_url",
    )
    node_region: str | None = Field(
        default=None, description="this node's region label (a data centre), for placement"
    )
    hospital_regions: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {"hospital id": "region"}: that hospital\'s consults get their media '
        "only on nodes of that region",
    )
    workers: int = Field(
        default=1, ge=1, description="nodes `serve` runs on this machine (`--workers`)"
    )
    worker_port: int | None = Field(
        default=None,
        description="set by `serve --workers N` in each worker: its own port (its node URL's), "
        "listened on beside `port`, which the workers share",
    )
    worker_ports_from: int | None = Field(
        default=None,
        description="`serve --workers N` gives its workers the N ports from this one; "
        "default: port + 1",
    )
    cluster_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins (scheme://host[:port], comma-separated; the same list on every "
        "node) of the public URL and of every node URL that is not the page's own: a page "
        "loaded from one of them keeps its signaling on another node (CSP connect-src and "
        "Socket.IO's allowed origins)",
    )
    node_heartbeat_seconds: float = Field(
        default=2.5, gt=0, description="how often a node announces itself and its load"
    )
    node_dead_after_seconds: float = Field(
        default=10.0, gt=0, description="a node silent this long is dead: its consults move"
    )
    media_voice_bitrate: int = Field(
        default=20_000,
        ge=0,
        le=510_000,
        description="the Opus bit rate (bit/s) publishers are asked to send their microphone at "
        "(maxaveragebitrate); 0: the browser's own (Chrome's 32 kbit/s). With headers a voice "
        "takes about 2.4 times this less 20 kbit/s on the wire: 20 kbit/s leaves a 60 kbit/s "
        "link room for signaling beside one voice",
    )
    media_packet_inlet: bool = Field(
        default=True,
        description="take publishers' RTP at the packet level (media/inlet.py); false: through "
        "aiortc's receiver, which costs more CPU per publisher (bench/sfu.py --arms receive)",
    )
    job_lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description="lifetime of the Redis lease under which one node runs retention and "
        "renditions for the cluster; another node takes a dead holder's job within it",
    )

    # Media: the addresses ICE host candidates are gathered on (LiveKit's node IP).
    media_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    media_ports: Annotated[tuple[int, int] | None, NoDecode] = Field(
        default=None,
        description="UDP ports (FIRST-LAST) the server's ICE sockets bind, the range a "
        "firewall opens; one per participant and media address; `serve --workers N` gives "
        "each worker its own slice; default: any ephemeral port",
    )
    ice_servers: Annotated[list[IceServer], NoDecode] = Field(
        default_factory=list,
        description="JSON list of RTCIceServer (STUN, static TURN) given to browsers and used "
        "by the server's own peers",
    )
    turn_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="TURN URLs (comma-separated; turns: on 443 first) given to browsers with "
        "short-lived credentials made from turn_secret; a hospital record's ICE settings win",
    )
    turn_secret: str | None = Field(
        default=None,
        description="coturn's static-auth-secret (use-auth-secret): TURN credentials of each "
        "join are made from it (the TURN REST API convention)",
    )
    turn_credential_seconds: int = Field(
        default=4 * 3600,
        ge=600,
        description="how long TURN credentials are valid after the later of the join and the "
        "consult's scheduled start: a consult's length plus a margin",
    )
    hospital_cache_seconds: float = Field(
        default=10.0,
        gt=0,
        description="how long a process reuses a hospital record it read (and its issuers) "
        "before reading it again: another process's change is seen within this time",
    )

    record_store: Literal["sql", "fhir"] = "sql"
    fhir_base_url: str | None = None
    fhir_timeout_seconds: float = 10.0
    # Clinical signing key (Ed25519 PEM): given as text, as a file every node mounts, or
    # generated in data_dir with mode 0600 (one process) or in the database (a cluster).
    clinical_signing_key: str | None = Field(
        default=None,
        description="the clinical signing key's PKCS#8 PEM text (Ed25519); wins over the file",
    )
    clinical_signing_key_file: Path | None = None
    # Outbox delivery to the record store: attempts before giving up, first backoff (doubling),
    # how long one process holds an entry it is delivering, and how often it looks for due ones.
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_backoff_seconds: float = Field(default=2.0, gt=0)
    outbox_lease_seconds: float = Field(default=60.0, gt=0)
    outbox_poll_seconds: float = Field(default=5.0, gt=0)
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="how long a webhook endpoint may take to answer one request before the "
        "attempt counts as failed (and is retried with the same webhook-id)",
    )

    # Recordings: kept this many days (at least one) unless the hospital's policy says otherwise;
    # playback links (signed, one recording only) are valid this many seconds.
    recording_retention_days: int = Field(default=365, ge=1)
    recording_link_ttl_seconds: int = Field(default=300, gt=0)
    # One recording stops at this length, or when its files reach this many bytes (per recording).
    recording_max_seconds: int = Field(default=3 * 3600, gt=0)
    recording_quota_bytes: int = Field(default=4 * 1024**3, gt=0)

    # Rate limits (the `limits` notation: "20 per 4 seconds", "30/minute;300/hour"), counted in
    # Redis when redis_url is set; and quotas. signaling/limits.py applies them.
    rate_limit_rest_writes: str = "120/minute"
    rate_limit_rest_writes_per_address: str = "600/minute"
    rate_limit_scheduling: str = "30/minute;300/hour"
    rate_limit_connects: str = "30/minute"
    rate_limit_connects_per_address: str = "300/minute"
    rate_limit_events: str = "200 per 10 seconds"
    rate_limit_chat: str = "20 per 4 seconds"
    rate_limit_ice_candidates: str = "100 per 10 seconds"
    max_sockets_per_identity: int = Field(default=8, ge=1)
    max_participants_per_consult: int = Field(default=16, ge=2)
    max_sdp_bytes: int = Field(default=65_536, ge=4_096)

    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="auto: text when stderr is a terminal, JSON lines otherwise"
    )

    @field_validator(
        "rate_limit_rest_writes",
        "rate_limit_rest_writes_per_address",
        "rate_limit_scheduling",
        "rate_limit_connects",
        "rate_limit_connects_per_address",
        "rate_limit_events",
        "rate_limit_chat",
        "rate_limit_ice_candidates",
    )
    @classmethod
    def _check_rates(cls, value: str) -> str:
        parse_many(value)  # a ValueError names the string it cannot read
        return value

    @field_validator("media_addresses", "turn_urls", mode="before")
    @classmethod
    def _split_addresses(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("media_ports", mode="before")
    @classmethod
    def _parse_port_range(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        if value.strip().startswith("["):  # JSON, as a dump of the settings writes it
            return tuple(json.loads(value))
        first, separator, last = value.partition("-")
        try:
            ports = (int(first), int(last if separator else first))
        except ValueError:
            raise ValueError(f"not a port range (FIRST-LAST): {value!r}") from None
        if not 1024 <= ports[0] <= ports[1] <= 65535:
            raise ValueError(f"not a port range within 1024-65535: {value!r}")
        return ports

    @field_validator("cluster_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().startswith("["):  # JSON, as a dump writes it
            value = json.loads(value)
        parts = value.split(",") if isinstance(value, str) else value
        origins = []
        for part in (str(p).strip() for p in parts):
            if not part:
                continue
            url = urlsplit(part)
            if url.scheme not in ("http", "https") or not url.netloc or url.path.strip("/"):
                raise ValueError(f"not an origin (scheme://host[:port]): {part!r}")
            origins.append(f"{url.scheme}://{url.netloc}")
        return origins

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return [ipaddress.ip_network(str(part), strict=False) for part in value]

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _parse_ice_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @property
    def recordings_dir(self) -> Path:
        """Where recordings are written."""
        return self.data_dir / "recordings"

    @property
    def clinical_key_path(self) -> Path:
        """The clinical signing key file (default ``clinical-signing-key.pem`` in data_dir)."""
        return self.clinical_signing_key_file or self.data_dir / CLINICAL_KEY_FILE

    @property
    def embedded_database_file(self) -> Path:
        """The SQLite file of the embedded default."""
        return self.data_dir / "teleconsult.db"

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.embedded_database_file.resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        """True when storage is the embedded SQLite default."""
        return self.effective_database_url.startswith("sqlite")

    def base_url(self) -> str:
        """The public base URL used in join links."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def effective_node_url(self) -> str:
        """The URL clients reach this node's signaling at."""
        return (self.node_url or self.base_url()).rstrip("/")

    def trusted_origins(self) -> list[str]:
        """The origins a consult's signaling may be sent to: the public URL's and the cluster's
        listed ones. A node whose URL is of another origin is never named to a client nor given
        a consult (docs/cluster.md)."""
        public = urlsplit(self.base_url())
        return list(dict.fromkeys([f"{public.scheme}://{public.netloc}", *self.cluster_origins]))

    def prepare_data_dir(self) -> None:
        """Create data_dir and recordings/ when missing, readable by this user only (0700), and
        the embedded database file (0600: SQLite gives its journal files the same mode)."""
        for folder in (self.data_dir, self.recordings_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)
        if self.is_embedded_database:
            database = self.embedded_database_file
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
            database.chmod(0o600)

    def signing_secret(self) -> str:
        """The HS256 secret: configured, or generated once in data_dir with mode 0600."""
        if self.jwt_secret:
            return self.jwt_secret
        return self._generated_secret(JWT_SECRET_FILE, new_jwt_secret)

    def secrets_keys(self) -> list[str]:
        """The keys that encrypt stored secrets (webhook and FHIR credentials): the configured
        ``TELECONSULT_SECRETS_KEY`` list (the first encrypts, all decrypt, so a key can be
        rotated), or one generated once in data_dir for a single-machine install."""
        if self.secrets_key:
            return [key.strip() for key in self.secrets_key.split(",") if key.strip()]
        return [self._generated_secret(SECRETS_KEY_FILE, new_secrets_key)]

    def kept_secret(self, name: str) -> str | None:
        """A secret this install generated before in ``data_dir/name``, if there is one."""
        path = self.data_dir / name
        return path.read_text().strip() if path.exists() else None

    def _generated_secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret kept in ``data_dir/name`` (mode 0600), made by ``make`` on first use."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process of this install made it first
                return path.read_text().strip()
            with os.fdopen(fd, "w") as handle:
                handle.write(make())
        return path.read_text().strip()


JWT_SECRET_FILE = "jwt-secret"
SECRETS_KEY_FILE = "secrets-key"
CLINICAL_KEY_FILE = "clinical-signing-key.pem"


def new_jwt_secret() -> str:
    """A new random HS256 secret."""
    return secrets.token_urlsafe(48)


def new_secrets_key() -> str:
    """A new random key for stored credentials (Fernet)."""
    return Fernet.generate_key().decode()


def new_clinical_signing_key() -> str:
    """A new Ed25519 private key for clinical signatures, PKCS#8 PEM."""
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; keyword arguments win (tests, CLI flags)."""
    return Settings(**overrides)
