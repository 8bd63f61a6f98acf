"""Scoring: item responses (or a licensed total) in, total, severity band and risk items out.

Scores are always computed here from the items, never taken from the caller (domain.md).
Validation is strict: the exact item count, whole numbers only (2.0, "2", True and None are
refused), each inside its item's range. The first offending item is named, 1-based.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from math import isfinite

from app.instruments.catalogue import Band, Instrument, Number, get_instrument


class ItemError(ValueError):
    """Bad measure input. `item` is the 1-based number of the offending item (None when the
    problem is the count, the shape or the total); `field` is "items" or "total"."""

    def __init__(self, message: str, *, field: str = "items", item: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.item = item

    @property
    def loc(self) -> tuple:
        """Where the error is, JSON-style: ("items", 0-based index) or ("items",) / ("total",)."""
        return (self.field,) if self.item is None else (self.field, self.item - 1)


@dataclass(frozen=True)
class Score:
    """A scored administration: total, band code, positive risk items (1-based), caseness."""

    total: Number
    severity: str
    risk_items: tuple[int, ...]
    case: bool | None


def score(instrument_id: str, items: Sequence | None = None, total: object = None) -> Score:
    """Score one administration of `instrument_id` from `items`, or from `total` (BDI-II only).

    Item instruments refuse a caller's `total` (it is computed); the total-only BDI-II refuses
    any `items`, even an empty list, and needs a whole-number total from 0 to 63. `case` is
    total >= the caseness cut-off, None where the instrument has none (MSPSS).
    """
    inst = get_instrument(instrument_id)
    if inst.total_only:
        if items is not None:
            raise ItemError(
                f"{inst.id} is licensed and recorded as a total only: send 'total', not items"
            )
        value = _check_total(inst, total)
    else:
        if total is not None:
            raise ItemError(
                f"the {inst.id} total is computed from the items: do not send it", field="total"
            )
        value = _TOTALS[inst.scoring](_check_items(inst, items))
    risk = () if inst.total_only else tuple(n for n in inst.risk_items if items[n - 1] > 0)
    case = None if inst.caseness is None else value >= inst.caseness
    return Score(total=value, severity=_band(inst, value).code, risk_items=risk, case=case)


def severity_of(instrument_id: str, total: object) -> str:
    """The band code for `total` (whole number; for the MSPSS any mean, rounded to 2 places)."""
    inst = get_instrument(instrument_id)
    if inst.scoring == "mean":
        if isinstance(total, bool) or not isinstance(total, int | float) or not isfinite(total):
            raise ItemError(f"{inst.id} total must be a number, got {_show(total)}", field="total")
        value = round2(total)
        if not inst.total_min <= value <= inst.total_max:
            raise ItemError(
                f"{inst.id} total must be from {inst.total_min} to {inst.total_max}, "
                f"got {_show(total)}",
                field="total",
            )
    else:
        value = _check_total(inst, total)
    return _band(inst, value).code


def sum_total(items: Sequence[int]) -> int:
    """The simple sum of the item scores, as each manual scores its total.

    - PHQ-9: items 1-9, each 0-3, summed to 0-27; the closing "how difficult" question is not
      part of the score and is not accepted. Item 9 (better off dead / hurting yourself) > 0
      is a risk item.
    - GAD-7: items 1-7, each 0-3, summed to 0-21.
    - EPDS: items 1-10 as keyed by the clinician (items 3 and 5-10 reverse-scored on the form),
      summed to 0-30. Item 10 (thought of harming myself) > 0 is a risk item.
    - HAM-D-17: the 17 clinician ratings (nine items 0-4, eight 0-2) summed to 0-52; record
      one rating for item 16, weight loss, by history or by measurement. Item 3 (suicide) > 0
      is a risk item.
    - WSAS: the five areas (work, home management, social leisure, private leisure, close
      relationships), each 0-8, summed to 0-40. All five are required.
    - BDI-II is summed the same way (21 items, 0-63) on the licensed form; only the total
      reaches this service.
    """
    return sum(items)


def qids_sr16_total(items: Sequence[int]) -> int:
    """QIDS-SR16: one score per DSM symptom domain, 0-27 (Rush et al. 2003).

    Sleep = the highest of items 1-4 (falling asleep, sleep during the night, waking too
    early, sleeping too much); sad mood = item 5; appetite/weight = the highest of items 6-9
    (decreased or increased appetite, decreased or increased weight); concentration (10),
    view of myself (11), thoughts of death or suicide (12), general interest (13) and energy
    (14) count as they are; psychomotor = the highest of items 15-16 (slowed down, restless).
    """
    i = (None, *items)  # 1-based, as on the form
    return max(i[1:5]) + i[5] + max(i[6:10]) + sum(i[10:15]) + max(i[15:17])


def mean_total(items: Sequence[int]) -> float:
    """MSPSS: the mean of the twelve items (1-7), rounded half-up to 2 decimal places.

    Zimet et al. (1988) report the scale as a mean; two decimals keep band edges exact
    (36/12 = 3.00 is moderate, 35/12 = 2.92 is low). Sums of twelve whole numbers never land
    on a half-cent, so the rounding direction never matters in practice.
    """
    return round2(Decimal(sum(items)) / len(items))


_TOTALS = {"sum": sum_total, "qids_sr16": qids_sr16_total, "mean": mean_total}


def _check_items(inst: Instrument, items: object) -> list[int]:
    if items is None:
        raise ItemError(f"{inst.id} needs its {inst.item_count} item responses")
    if not isinstance(items, list | tuple):
        raise ItemError(f"{inst.id} items must be a list of {inst.item_count} whole numbers")
    if len(items) != inst.item_count:
        raise ItemError(f"{inst.id} has {inst.item_count} items, got {len(items)}")
    for n, (value, (low, high)) in enumerate(zip(items, inst.item_ranges), start=1):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ItemError(
                f"{inst.id} item {n} must be a whole number from {low} to {high}, "
                f"got {_show(value)}",
                item=n,
            )
    return list(items)


def _check_total(inst: Instrument, total: object) -> int:
    if total is None:
        raise ItemError(f"{inst.id} needs a total", field="total")
    if isinstance(total, bool) or not isinstance(total, int):
        raise ItemError(
            f"{inst.id} total must be a whole number, got {_show(total)}", field="total"
        )
    if not inst.total_min <= total <= inst.total_max:
        raise ItemError(
            f"{inst.id} total must be from {inst.total_min} to {inst.total_max}, got {total}",
            field="total",
        )
    return total


def _band(inst: Instrument, total: Number) -> Band:
    for band in inst.bands:
        if band.contains(total):
            return band
    raise ItemError(f"{inst.id} total {total} falls in no severity band", field="total")


def round2(value: Number | Decimal) -> float:
    """`value` rounded half-up to 2 decimal places (MSPSS totals and their changes)."""
    return float(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
