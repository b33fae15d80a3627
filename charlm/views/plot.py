"""Line plots in the terminal, drawn by plotext (docs/views-and-report.md says why plotext).

A plot comes back as a rich ``Text``: printed through a rich console, its colours are dropped
where the output is not a terminal. Without colour the curves are told apart by their marker
characters instead, so a plot is always readable.
"""
from dataclasses import dataclass

# 256-colour codes of the curves, in turn: bright blue, red, green, magenta, cyan, yellow
COLOURS = (12, 9, 10, 13, 14, 11)
PLAIN_MARKERS = ("•", "+", "x", "o", "*", "#")


@dataclass
class Line:
    label: str
    xs: list
    ys: list


def line_plot(lines, width, height, colour=True, title=None, xlabel=None, xticks=None,
              yticks=None):
    """A rich Text: the lines (at most six) on one set of axes, then a legend line.
    ``xticks``, ``yticks``: (positions, labels) or None for plotext's own."""
    import plotext
    from rich.text import Text
    figure = plotext.figure
    figure.clear()
    figure.theme("simple")
    figure.plot_size(width, height)
    legend = Text()
    for k, line in enumerate(lines):
        marker = (plotext.marker("hd", COLOURS[k % len(COLOURS)]) if colour
                  else plotext.marker(PLAIN_MARKERS[k % len(PLAIN_MARKERS)]))
        signal = figure.signal(list(map(float, line.xs)), list(map(float, line.ys)), marker=marker)
        signal.lines()
        figure.draw(signal)
        legend.append("  ▚▚ " if colour else f"  {PLAIN_MARKERS[k % len(PLAIN_MARKERS)]} ",
                      style=f"color({COLOURS[k % len(COLOURS)]})")
        legend.append(line.label)
    for axis, ticks in (("x", xticks), ("y", yticks)):
        if ticks is not None:
            figure.ruler(axis).ticks(list(map(float, ticks[0])), list(ticks[1]))
    if xticks is not None:
        figure.ruler("x").lim(*_room_for_labels(lines, xticks, width))
    if title:
        figure.title(title)
    if xlabel:
        figure.label(xlabel)
    plot = Text.from_ansi(figure.build().string(colorless=not colour))
    plot.rstrip()
    figure.clear()
    return Text("\n").join([plot, legend])


def _room_for_labels(lines, ticks, width):
    """x limits with room for the first and last tick labels, centred on their ticks: plotext
    drops a label that would cross the edge of the plot."""
    xs = [x for line in lines for x in line.xs] + list(ticks[0])
    lo, hi = min(xs), max(xs)
    span = (hi - lo) or 1.0
    chars = max(10, width - 10)                      # the canvas, less the y labels and frame
    left, right = len(ticks[1][0]) / 2 + 1, len(ticks[1][-1]) / 2 + 1
    per_char = span / max(1.0, chars - left - right)
    return lo - left * per_char, hi + right * per_char


def log_ticks(low, high):
    """Positions (log10) and labels of at most six powers of ten between low and high (positive);
    the nearest power when none lies between."""
    import math
    first, last = math.ceil(math.log10(low)), math.floor(math.log10(high))
    if first > last:
        first = last = round(math.log10(high))
    stride = max(1, math.ceil((last - first + 1) / 6))
    powers = list(range(last, first - 1, -stride))[::-1]
    return powers, [_power_label(p) for p in powers]


def even_ticks(last, parts=4):
    """Integer x ticks from 0 to last in about ``parts`` equal steps: (positions, labels)."""
    positions = sorted({round(i * last / parts) for i in range(parts + 1)})
    return positions, [str(p) for p in positions]


def _power_label(p):
    return {0: "1", 1: "10", 2: "100", -1: "0.1", -2: "0.01"}.get(p, f"1e{p}")
