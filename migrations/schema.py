"""Every module that declares tables, imported so that Base.metadata knows the whole schema."""

import clinical.models  # noqa: F401
import config.keys  # noqa: F401
import outbox.models  # noqa: F401
import recordings.models  # noqa: F401
import rooms.audit
import rooms.models
import rooms.webhooks.models  # noqa: F401
