"""Line plots as inline SVG text, for the report page: no plotting library, nothing fetched.

Colours and strokes come from the page's style sheet through class names (``series-0``,
``series-1``, ...), so that a plot's look is set in one place. Every text is escaped.
"""
import math
from html import escape

MARGIN = dict(left=58, right=16, top=14, bottom=42)
CHAR_WIDTH = 6.4         # the average width of a legend character (12 px sans-serif), for its box
MAX_MARKED = 60          # series with at most this many points get a marker (and tooltip) per point


def line_plot(series, x_label, y_label, log_y=False, width=500, height=280, label=""):
    """An SVG line plot. ``series``: a list of (name, xs, ys); a y of None (or, with ``log_y``,
    not above 0) leaves a gap. ``label`` is the plot's accessible name."""
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if _shown(y, log_y)]
    if not points:
        return ""
    left, top = MARGIN["left"], MARGIN["top"]
    right, bottom = width - MARGIN["right"], height - MARGIN["bottom"]
    x_ticks = ticks(min(p[0] for p in points), max(p[0] for p in points))
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    y_ticks = log_ticks(y_lo, y_hi) if log_y else ticks(y_lo, y_hi)
    fy = math.log10 if log_y else float

    def to_x(x):
        lo, hi = x_ticks[0], x_ticks[-1]
        return left + (x - lo) / ((hi - lo) or 1) * (right - left)

    def to_y(y):
        lo, hi = fy(y_ticks[0]), fy(y_ticks[-1])
        return bottom - (fy(y) - lo) / ((hi - lo) or 1) * (bottom - top)

    parts = [f'<svg class="plot" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(label)}">']
    for x in x_ticks:
        parts.append(f'<line class="grid" x1="{to_x(x):.1f}" x2="{to_x(x):.1f}" y1="{top}" '
                     f'y2="{bottom}"/><text class="tick" x="{to_x(x):.1f}" y="{bottom + 16}" '
                     f'text-anchor="middle">{_number(x)}</text>')
    for y in y_ticks:
        parts.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{to_y(y):.1f}" '
                     f'y2="{to_y(y):.1f}"/><text class="tick" x="{left - 6}" y="{to_y(y) + 4:.1f}" '
                     f'text-anchor="end">{_number(y)}</text>')
    parts.append(f'<rect class="frame" x="{left}" y="{top}" width="{right - left}" '
                 f'height="{bottom - top}"/>')
    parts.append(f'<text class="axis" x="{(left + right) / 2:.0f}" y="{height - 6}" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    parts.append(f'<text class="axis" transform="translate(14 {(top + bottom) / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_label)}</text>')
    for k, (name, xs, ys) in enumerate(series):
        parts.append(_series(k, name, xs, ys, log_y, to_x, to_y))
    parts.append(_legend([name for name, _, _ in series], right))
    parts.append("</svg>")
    return "".join(parts)


def _shown(y, log_y):
    return y is not None and math.isfinite(y) and (y > 0 or not log_y)


def _series(k, name, xs, ys, log_y, to_x, to_y):
    """One series: a path broken where a value is missing, and markers with tooltips."""
    pieces, pen_down = [], False
    marked = len(xs) <= MAX_MARKED
    markers = []
    for x, y in zip(xs, ys):
        if not _shown(y, log_y):
            pen_down = False
            continue
        pieces.append(f'{"L" if pen_down else "M"}{to_x(x):.1f} {to_y(y):.1f}')
        pen_down = True
        if marked:
            markers.append(f'<circle cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="2.5"><title>'
                           f'{escape(name)}: {_number(y, 4)} at {_number(x)}</title></circle>')
    return (f'<g class="series series-{k}"><path d="{" ".join(pieces)}"/>'
            + "".join(markers) + "</g>")


def _legend(names, right):
    """The series' names in the top right corner, on a backing that hides the grid behind them."""
    width = 34 + CHAR_WIDTH * max(len(name) for name in names)
    left, top = right - width - 4, MARGIN["top"] + 4
    rows = [f'<rect class="legend-box" x="{left:.0f}" y="{top}" width="{width:.0f}" '
            f'height="{16 * len(names) + 6}" rx="3"/>']
    for k, name in enumerate(names):
        y = top + 15 + 16 * k
        rows.append(f'<g class="series series-{k}"><line x1="{left + 6:.0f}" x2="{left + 24:.0f}" '
                    f'y1="{y - 4}" y2="{y - 4}"/><text class="legend" x="{left + 30:.0f}" y="{y}">'
                    f'{escape(name)}</text></g>')
    return "".join(rows)


def ticks(lo, hi, count=6):
    """Round tick values (steps of 1, 2 or 5 times a power of ten) that cover [lo, hi]."""
    if hi <= lo:        # one value: a range around it, wide enough to tell apart at its size
        pad = max(0.5, abs(lo) * 0.05)
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    last = math.ceil(hi / step) * step
    n = int(round((last - first) / step))
    return [round(first + i * step, 12) for i in range(n + 1)]


def log_ticks(lo, hi):
    """Powers of ten that cover [lo, hi] (lo > 0), with 2 and 5 between them when the range spans
    fewer than three decades."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if last == first:
        last += 1
    mantissas = (1, 2, 5) if last - first < 3 else (1,)
    values = [m * 10.0 ** e for e in range(first, last) for m in mantissas] + [10.0 ** last]
    below = [v for v in values if v <= lo]
    above = [v for v in values if v >= hi]
    return [v for v in values if below[-1] <= v <= above[0]]


def _number(x, digits=3):
    """A tick or tooltip number: plain for ordinary magnitudes, scientific for tiny or huge ones."""
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e9:
        return f"{int(x):,}"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{x:.{digits}g}"
