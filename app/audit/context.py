"""What the current request touched, noted by repositories for the audit event written at its end."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class AuditNote:
    """The resource and patient a request read or changed, plus non-clinical details (counts, profile)."""

    resource_type: str | None = None
    resource_id: str | None = None
    patient_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_current: ContextVar[AuditNote | None] = ContextVar("audit_note", default=None)


def begin() -> AuditNote:
    """Start noting for a new request."""
    note = AuditNote()
    _current.set(note)
    return note


def note(*, resource_type: str | None = None, resource_id: str | None = None, patient_id: str | None = None,
         **details: Any) -> None:
    """Record what was touched; the first resource noted wins, a patient id is kept once known."""
    current = _current.get()
    if current is None:
        return
    if resource_type and current.resource_type is None:
        current.resource_type, current.resource_id = resource_type, resource_id
    if patient_id and current.patient_id is None:
        current.patient_id = patient_id
    current.details.update(details)
