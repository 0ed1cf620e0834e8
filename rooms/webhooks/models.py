"""The webhook endpoints of each hospital: where its events go, signed with whose secret."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from config.database import Base, UTCDateTime
from rooms.models import new_id, utcnow


class WebhookEndpoint(Base):
    """A URL of a hospital's system that receives the event types it subscribed to.

    The signing secret (``whsec_…``) is stored encrypted (:class:`config.secrets.SecretBox`) and
    shown to the administrator only when it is made.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hospital_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret_ciphertext: Mapped[str] = mapped_column(String(512))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
