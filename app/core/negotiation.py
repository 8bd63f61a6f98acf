"""Proactive content negotiation: which of the offered media types an Accept header prefers."""

from __future__ import annotations


def _ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0  # a malformed weight counts as not acceptable rather than as a preference
        if media:
            ranges.append((media.lower(), q))
    return ranges


def _weight(media_type: str, ranges: list[tuple[str, float]]) -> float:
    kind = media_type.split("/")[0]
    # The most specific range that matches decides (RFC 9110 12.5.1): type/subtype, then type/*, then */*.
    for candidate in (media_type, f"{kind}/*", "*/*"):
        weights = [q for media, q in ranges if media == candidate]
        if weights:
            return max(weights)
    return 0.0


def negotiate(accept: str | None, offered: tuple[str, ...]) -> str:
    """The offered media type the Accept header weighs highest; the first offered on a tie or no header."""
    if not accept:
        return offered[0]
    ranges = _ranges(accept)
    best = max(offered, key=lambda media_type: _weight(media_type, ranges))  # max keeps the first on a tie
    # Nothing offered is acceptable: answer the default rather than 406, as the routes did before negotiating.
    return best if _weight(best, ranges) > 0 else offered[0]
