"""Consultation notes, e-prescriptions, signing, pharmacist review, the record store (the
outbox's deliverer of the record kinds)."""
