"""Pseudonyms for the research export: keyed hashes of real ids, never reversible from the export alone.

HMAC-SHA256 of the real id under the organization's export key, truncated to 96 bits and prefixed
by kind (``p_`` patient, ``c_`` course, ``g_`` group IPT group). The same key gives the same pseudonym in every export;
another organization (another key) or a rotated key gives unrelated ones. Without the key, which
no route returns, a pseudonym cannot be linked back to an id even by someone who knows the ids.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIXES = {"patient": "p_", "course": "c_", "group": "g_"}
_HEX_CHARS = 24  # 96 bits: collisions are negligible even for hundreds of millions of ids


class Pseudonymizer:
    """Turns real ids into stable pseudonyms under one export key."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("an export key is required")
        self._key = key.encode()

    def __repr__(self) -> str:  # never print the key
        return "Pseudonymizer(<key>)"

    def __call__(self, kind: str, real_id: str) -> str:
        """The pseudonym of ``real_id``; the kind is hashed in, so a patient and a course never share one."""
        digest = hmac.new(self._key, f"{kind}\0{real_id}".encode(), hashlib.sha256).hexdigest()
        return PREFIXES[kind] + digest[:_HEX_CHARS]
