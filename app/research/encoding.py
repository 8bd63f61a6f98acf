"""NDJSON and CSV encoders for batches of (course facts, values) pairs; each batch becomes one chunk of bytes.

The course facts that open a row are encoded once per course (rows of a course share one tuple),
and a whole batch is written into one buffer, so the streaming response sends few, large chunks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import orjson

from app.research.columns import COURSE_FACTS, MAX_ITEMS, Column

_FACT_NAMES = tuple(c.name for c in COURSE_FACTS)
MEDIA_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8; header=present"}


class NdjsonEncoder:
    """One JSON object per line, keys in column order (orjson)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.names = tuple(c.name for c in columns[len(_FACT_NAMES):])
        self.items_last = self.names[-1] == "items"  # measures: checked JSON text (rows.items_json), embedded as is
        self._facts: tuple | None = None
        self._prefix = b""

    def header(self) -> bytes:
        """NDJSON has no header."""
        return b""

    def encode(self, pairs: Sequence[tuple[tuple, tuple]]) -> bytes:
        """The lines of a batch."""
        names, dumps, fragment, items_last, lines = self.names, orjson.dumps, orjson.Fragment, self.items_last, []
        append = lines.append
        for facts, values in pairs:
            if facts is not self._facts:
                self._facts = facts
                self._prefix = dumps(dict(zip(_FACT_NAMES, facts, strict=True)))[:-1] + b","
            row = dict(zip(names, values, strict=True))
            if items_last and values[-1] is not None:
                row["items"] = fragment(values[-1])
            append(self._prefix + dumps(row)[1:])
        lines.append(b"")
        return b"\n".join(lines)


def _csv_value(value: object) -> object:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value


class CsvEncoder:
    """RFC 4180: a header row, CRLF line ends, quoting only where needed; null is empty, booleans true/false.

    For measures, the final 'items' value is spread over item_1 .. item_MAX_ITEMS.
    """

    def __init__(self, columns: Sequence[Column], spread_items: bool) -> None:
        self.names = [c.name for c in columns]
        self.spread_items = spread_items
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self._facts: tuple | None = None
        self._fact_cells: list = []

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def header(self) -> bytes:
        """The header row."""
        self._writer.writerow(self.names)
        return self._take()

    def encode(self, pairs: Sequence[tuple[tuple, tuple]]) -> bytes:
        """The rows of a batch."""
        rows = []
        blank = [None] * MAX_ITEMS
        for facts, values in pairs:
            if facts is not self._facts:
                self._facts, self._fact_cells = facts, [_csv_value(v) for v in facts]
            if self.spread_items:
                items = orjson.loads(values[-1]) if values[-1] is not None else ()
                rows.append([*self._fact_cells, *values[:-1], *items, *blank[len(items):]])
            else:
                rows.append([*self._fact_cells, *(_csv_value(v) for v in values)])
        self._writer.writerows(rows)
        return self._take()


def encoder(fmt: str, columns: Sequence[Column], dataset: str) -> NdjsonEncoder | CsvEncoder:
    """The encoder for a format and an export's columns."""
    return NdjsonEncoder(columns) if fmt == "ndjson" else CsvEncoder(columns, spread_items=dataset == "measures")
