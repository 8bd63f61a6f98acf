"""Hash chaining of audit events: canonical form, sealing in order, and verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from app.core.ids import rfc3339

GENESIS = "0" * 64
HASHED_FIELDS = ("id", "organization_id", "seq", "at", "actor_type", "actor_id", "action", "resource_type",
                 "resource_id", "patient_id", "request_id", "ip", "user_agent", "outcome", "details")


# json.dumps with these options builds an encoder on every call; the sealer hashes thousands a second.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def canonical(event: dict[str, Any]) -> bytes:
    """The bytes an event's hash covers: every field, timestamps normalised to UTC, keys sorted."""
    values = {name: event.get(name) for name in HASHED_FIELDS}
    values["at"] = rfc3339(event["at"])
    return _ENCODER.encode(values).encode()


def link(prev_hash: str, event: dict[str, Any]) -> str:
    """The hash of an event chained to the one before it."""
    return hashlib.sha256(prev_hash.encode() + b"|" + canonical(event)).hexdigest()


def first_break(events: Iterable[dict[str, Any]], head: dict[str, Any] | None) -> str | None:
    """Walk one organization's sealed events in seq order; describe the first problem, or None."""
    prev_hash, expected_seq, last = GENESIS, 1, None
    for event in events:
        where = f"event {event['id']} (seq {event['seq']})"
        if event["seq"] != expected_seq:
            kind = "missing" if event["seq"] > expected_seq else "reordered"
            return f"{kind}: expected seq {expected_seq} but found {where}"
        if event["prev_hash"] != prev_hash:
            return f"reordered or missing: {where} does not follow the event before it"
        if link(prev_hash, event) != event["hash"]:
            return f"altered: {where} does not match its hash"
        prev_hash, expected_seq, last = event["hash"], expected_seq + 1, event
    if head is not None and (last is None or head["seq"] != last["seq"] or head["hash"] != last["hash"]):
        return f"missing: the chain head is at seq {head['seq']} but the last event found is at seq {expected_seq - 1}"
    return None
