"""The measure catalogue as data, with pure scoring and outcome functions (domain.md).

Standard library only: nothing here imports the rest of the app, a database or a clock.
"""

from app.instruments.catalogue import (
    INSTRUMENTS,
    Band,
    Instrument,
    UnknownInstrument,
    get_instrument,
    jacobson_truax,
)
from app.instruments.outcomes import (
    MeasurePoint,
    change_from_baseline,
    instrument_outcome,
    paired_outcome,
    reliable_change,
)
from app.instruments.scoring import ItemError, Score, score, severity_of

__all__ = [
    "INSTRUMENTS",
    "Band",
    "Instrument",
    "ItemError",
    "MeasurePoint",
    "Score",
    "UnknownInstrument",
    "change_from_baseline",
    "get_instrument",
    "instrument_outcome",
    "jacobson_truax",
    "paired_outcome",
    "reliable_change",
    "score",
    "severity_of",
]
