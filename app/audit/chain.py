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


class Walk:
    """One organization's chain walked event by event in seq order, from where it starts (genesis or an archived head)."""

    def __init__(self, seq: int = 0, hash: str = GENESIS) -> None:
        self.seq, self.hash = seq, hash

    def out_of_order(self, event: dict[str, Any]) -> str | None:
        """Describe an event that is not the next seq, or None."""
        if event["seq"] == self.seq + 1:
            return None
        kind = "missing" if event["seq"] > self.seq + 1 else "reordered"
        return f"{kind}: expected seq {self.seq + 1} but found event {event['id']} (seq {event['seq']})"

    def step(self, event: dict[str, Any]) -> str | None:
        """Take the next event; describe the first problem with it, or None."""
        where = f"event {event['id']} (seq {event['seq']})"
        if problem := self.out_of_order(event):
            return problem
        if event["prev_hash"] != self.hash:
            return f"reordered or missing: {where} does not follow the event before it"
        if link(self.hash, event) != event["hash"]:
            return f"altered: {where} does not match its hash"
        self.seq, self.hash = event["seq"], event["hash"]
        return None

    def end(self, head: dict[str, Any] | None) -> str | None:
        """After the last event: describe a chain head the walk did not reach, or None."""
        if head is not None and (head["seq"] != self.seq or head["hash"] != self.hash):
            return f"missing: the chain head is at seq {head['seq']} but the last event found is at seq {self.seq}"
        return None


def extend(walk: Walk, events: Iterable[dict[str, Any]]) -> list[tuple[str, int, str, str, Any]]:
    """Chain ``events``, in order, after ``walk``: the seal of each as (event id, seq, prev_hash, hash, at).

    The sealer's step, and the one to use to seed sealed events in bulk (see the README, Audit).
    """
    sealed = []
    for event in events:
        event["seq"] = walk.seq + 1
        digest = link(walk.hash, event)
        sealed.append((event["id"], event["seq"], walk.hash, digest, event["at"]))
        walk.seq, walk.hash = event["seq"], digest
    return sealed


def first_break(events: Iterable[dict[str, Any]], head: dict[str, Any] | None, start: Walk | None = None) -> str | None:
    """Walk one organization's sealed events in seq order; describe the first problem, or None."""
    walk = start or Walk()
    for event in events:
        if problem := walk.step(event):
            return problem
    return walk.end(head)
