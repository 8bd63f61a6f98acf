"""An SVG chart of one instrument's trajectory over session numbers (pure: data in, text out).

Only catalogue text (instrument and band names) and numbers are drawn: never a patient's name,
an id or free text, so the image can be shown or saved without leaking anything more than scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from app.instruments import Instrument

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 44, 52  # the right margin holds the band labels
# Light fills from "good" to "bad"; an instrument's bands are spread over them in order.
PALETTE = ("#e3f2e1", "#f3f6d8", "#fff4cf", "#ffe2c4", "#fbd0cb")
LINE, POINT, RISK = "#1f4e79", "#1f4e79", "#c62828"


@dataclass(frozen=True)
class ChartPoint:
    """One administration: where it sits on the session axis, its total, and its risk flag state."""

    session_number: int
    total: float
    risk: bool  # a risk item was positive
    risk_open: bool  # ... and it has not been acknowledged yet


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _attrs(**attrs: object) -> str:
    return " ".join(f"{k.rstrip('_').replace('_', '-')}={quoteattr(str(v))}" for k, v in attrs.items())


def _el(tag: str, text: str | None = None, **attrs: object) -> str:
    if text is None:
        return f"<{tag} {_attrs(**attrs)}/>"
    return f"<{tag} {_attrs(**attrs)}>{escape(text)}</{tag}>"


class _Frame:
    """Maps session numbers and totals to pixels."""

    def __init__(self, inst: Instrument, last_session: int) -> None:
        self.low, self.high = float(inst.total_min), float(inst.total_max)
        self.last = max(last_session, 1)
        self.width, self.height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, session: float) -> float:
        return LEFT + self.width * session / self.last

    def y(self, total: float) -> float:
        return TOP + self.height * (self.high - total) / (self.high - self.low)


def _bands(inst: Instrument, frame: _Frame) -> list[str]:
    out = ['<g class="bands">']
    count = len(inst.bands)
    for i, band in enumerate(inst.bands):
        shade = round(i * (len(PALETTE) - 1) / max(count - 1, 1))
        shade = PALETTE[len(PALETTE) - 1 - shade if inst.higher_is_better else shade]
        low = frame.low if i == 0 else float(band.low)
        high = frame.high if i == count - 1 else float(inst.bands[i + 1].low)
        top, bottom = frame.y(high), frame.y(low)
        out.append(_el("rect", class_=f"band band-{band.code}", x=LEFT, y=f"{top:.1f}", width=frame.width,
                       height=f"{bottom - top:.1f}", fill=shade))
        name = band.code.replace("_", " ").capitalize()
        out.append(_el("text", f"{name} ({_fmt(band.low)}-{_fmt(band.high)})", class_="band-label",
                       x=LEFT + frame.width + 8, y=f"{(top + bottom) / 2 + 4:.1f}", font_size=11, fill="#444"))
    out.append("</g>")
    return out


def _axes(inst: Instrument, frame: _Frame) -> list[str]:
    base = TOP + frame.height
    out = ['<g class="axes" stroke="#666" font-size="11" fill="#333">',
           _el("line", x1=LEFT, y1=TOP, x2=LEFT, y2=base),
           _el("line", x1=LEFT, y1=base, x2=LEFT + frame.width, y2=base)]
    step = max(1, -(-frame.last // 16))  # at most about 16 session ticks
    sessions = list(range(0, frame.last + 1, step))
    if sessions[-1] != frame.last:  # always label the last session, dropping a neighbour too close to it
        if frame.last - sessions[-1] < step / 2 + 0.5:
            sessions.pop()
        sessions.append(frame.last)
    for session in sessions:
        x = frame.x(session)
        out.append(_el("line", x1=f"{x:.1f}", y1=base, x2=f"{x:.1f}", y2=base + 4))
        out.append(_el("text", str(session), x=f"{x:.1f}", y=base + 17, text_anchor="middle", stroke="none"))
    if inst.scoring == "mean":  # band edges such as 5.01 make poor labels: whole points of the scale
        ticks = [float(t) for t in range(int(frame.low), int(frame.high) + 1)]
    else:
        ticks = sorted({frame.low, frame.high, *(float(b.low) for b in inst.bands)})
    for total in ticks:
        y = frame.y(total)
        out.append(_el("line", x1=LEFT - 4, y1=f"{y:.1f}", x2=LEFT, y2=f"{y:.1f}"))
        out.append(_el("text", _fmt(total), x=LEFT - 7, y=f"{y + 4:.1f}", text_anchor="end", stroke="none"))
    out.append(_el("text", "Session number (0 = before session 1)", class_="axis-label",
                   x=LEFT + frame.width / 2, y=HEIGHT - 12, text_anchor="middle", stroke="none"))
    score = "Mean score" if inst.scoring == "mean" else "Total score"
    out.append(_el("text", score, class_="axis-label", x=14, y=TOP + frame.height / 2,
                   text_anchor="middle", stroke="none", transform=f"rotate(-90 14 {TOP + frame.height / 2:.1f})"))
    out.append("</g>")
    return out


def _trajectory(points: Sequence[ChartPoint], frame: _Frame) -> list[str]:
    if not points:
        return [_el("text", "No measures of this instrument recorded yet", class_="empty",
                    x=LEFT + frame.width / 2, y=TOP + frame.height / 2, text_anchor="middle", font_size=13)]
    xy = [(frame.x(p.session_number), frame.y(p.total)) for p in points]
    out = [_el("polyline", class_="trajectory", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy),
               fill="none", stroke=LINE, stroke_width=2)]
    out.append('<g class="points">')
    for p, (x, y) in zip(points, xy):
        out.append(_el("circle", class_="point", cx=f"{x:.1f}", cy=f"{y:.1f}", r=4, fill=POINT))
    out.append("</g>")
    out.append('<g class="risk-markers">')
    for p, (x, y) in zip(points, xy):
        if p.risk:
            state = "open" if p.risk_open else "acknowledged"
            out.append(_el("circle", class_=f"risk-marker {state}", cx=f"{x:.1f}", cy=f"{y:.1f}", r=8, fill="none",
                           stroke=RISK, stroke_width=2, stroke_dasharray="none" if p.risk_open else "3 2"))
    out.append("</g>")
    return out


def render(inst: Instrument, points: Sequence[ChartPoint], session_limit: int) -> str:
    """The trajectory of `points` (oldest first) with the instrument's severity bands shaded."""
    last = max([session_limit, *(p.session_number for p in points)])
    frame = _Frame(inst, last)
    flagged = sum(p.risk for p in points)
    title = f"{inst.id.upper()} score by session"
    desc = (f"{inst.name}: {len(points)} administration(s) over sessions 0-{frame.last}; {flagged} with a positive risk item, "
            f"circled in red (dashed once acknowledged). "
            f"{'Higher' if inst.higher_is_better else 'Lower'} scores are better.")
    parts = [
        "<svg " + _attrs(xmlns="http://www.w3.org/2000/svg", width=WIDTH, height=HEIGHT, viewBox=f"0 0 {WIDTH} {HEIGHT}",
                         role="img", aria_labelledby="chart-title chart-desc", font_family="sans-serif") + ">",
        _el("title", title, id="chart-title"),
        _el("desc", desc, id="chart-desc"),
        _el("text", title, class_="title", x=LEFT, y=26, font_size=15, font_weight="bold", fill="#222"),
        *_bands(inst, frame),
        *_axes(inst, frame),
        *_trajectory(points, frame),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
