"""Every module that declares tables, imported so that Base.metadata knows the whole schema."""

import rooms.audit
import rooms.models  # noqa: F401
