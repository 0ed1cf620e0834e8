"""Shared helpers of the clinical tests: a complete note, a complete prescription item."""

from __future__ import annotations

from typing import Any

from tests.log_scan import register_secret

NOTE = {
    "subjective": "Headache for three days, worse in the morning.",
    "objective": "BP 162/98 mmHg, pulse 78.",
    "assessment": "Uncontrolled essential hypertension.",
    "plan": "Start amlodipine; home BP log; review in two weeks.",
    "diagnoses": [{"code": "I10", "text": "Essential (primary) hypertension"}],
}
register_secret(NOTE["subjective"], NOTE["objective"], NOTE["assessment"], NOTE["plan"])


def item(code: str = "C08CA01", name: str = "Amlodipine", **overrides: Any) -> dict[str, Any]:
    """A complete prescription item (amlodipine 5 mg once a day for 14 days by default)."""
    value: dict[str, Any] = {
        "drug": {"code": code, "name": name},
        "strength": "5 mg",
        "dose": "1",
        "dose_unit": "tablet",
        "route": "oral",
        "frequency": "QD",
        "duration_days": 14,
        "quantity": 14,
        "refills": 0,
        "instructions": "Take in the morning.",
    }
    value.update(overrides)
    register_secret(value["instructions"])
    return value
