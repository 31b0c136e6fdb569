"""A small server-rendered SVG line chart of events over time (no JavaScript, no library)."""

from __future__ import annotations

import unicodedata
from datetime import datetime, timedelta

from markupsafe import Markup, escape

COLOURS = {
    "delivered": "#0b57d0",
    "opened": "#1e8e3e",
    "clicked": "#f29900",
    "bounced": "#b3261e",
    "unsubscribed": "#7b1fa2",
    "complained": "#000000",
}


def events_chart_svg(
    timeline: list[tuple[datetime, str, int]],
    bucket: timedelta,
    labels: dict[str, str],
    *,
    width: int = 600,
    height: int = 220,
) -> Markup:
    """One polyline per metric over time buckets. Empty timeline: empty markup."""
    if not timeline:
        return Markup("")
    pad_left, pad_bottom, pad_top, pad_right = 40, 30, 10, 110
    starts = sorted({start for start, _, _ in timeline})
    first, last = starts[0], starts[-1]
    steps = max(1, int((last - first) / bucket))
    peak = max(n for _, _, n in timeline)
    plot_w = width - pad_left - pad_right
    plot_h = height - pad_top - pad_bottom

    def x(at: datetime) -> float:
        return pad_left + plot_w * ((at - first) / bucket) / steps

    def y(n: int) -> float:
        return pad_top + plot_h * (1 - n / peak)

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="events over time">',
        f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{pad_left + plot_w}" '
        f'y2="{pad_top + plot_h}" stroke="#999"/>',
        f'<line x1="{pad_left}" y1="{pad_top}" x2="{pad_left}" y2="{pad_top + plot_h}" '
        'stroke="#999"/>',
        f'<text x="{pad_left - 4}" y="{pad_top + 10}" text-anchor="end" font-size="11">'
        f"{peak}</text>",
        f'<text x="{pad_left}" y="{height - 8}" font-size="11">{first:%m-%d %H:%M}</text>',
        f'<text x="{pad_left + plot_w}" y="{height - 8}" text-anchor="end" font-size="11">'
        f"{last:%m-%d %H:%M} UTC</text>",
    ]
    legend_y = pad_top + 12
    for metric, colour in COLOURS.items():
        series = {start: n for start, m, n in timeline if m == metric}
        if not series:
            continue
        points = []
        for step in range(steps + 1):
            at = first + bucket * step
            points.append(f"{x(at):.1f},{y(series.get(at, 0)):.1f}")
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(points)}"/>'
        )
        parts.append(
            f'<text x="{width - pad_right + 8}" y="{legend_y}" font-size="12" fill="{colour}">'
            f"{escape(labels.get(metric, metric))} ({sum(series.values())})</text>"
        )
        legend_y += 16
    parts.append("</svg>")
    return Markup("".join(parts))


LABEL_UNITS = 32  # what fits left of the bars at 12 px: a wide (CJK) character counts 2


def _fit(label: str, units: int) -> str:
    """`label`, cut with an ellipsis to `units` of display width."""
    used = 0
    for i, char in enumerate(label):
        used += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if used > units:
            return label[: max(i - 1, 0)] + "…"
    return label


def bars_chart_svg(
    bars: list[tuple[str, int]],
    *,
    title: str,
    description: str,
    width: int = 600,
    bar_height: int = 22,
) -> Markup:
    """Horizontal bars, one per (label, value), in the given order: accessible without sight
    (role="img", a <title> and a <desc> carrying every value) and without script.

    Labels are escaped; a long label is cut to fit, its full text stays in the <desc>.
    """
    if not bars:
        return Markup("")
    pad_left, pad_right, pad_top, gap = 220, 50, 8, 6
    plot_w = width - pad_left - pad_right
    peak = max(value for _, value in bars) or 1
    height = pad_top * 2 + len(bars) * (bar_height + gap)
    parts = [
        f'<svg class="chart bars" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="bars-title bars-desc">',
        f'<title id="bars-title">{escape(title)}</title>',
        f'<desc id="bars-desc">{escape(description)}</desc>',
    ]
    for i, (label, value) in enumerate(bars):
        y = pad_top + i * (bar_height + gap)
        w = plot_w * value / peak
        short = _fit(label, LABEL_UNITS)
        parts.append(
            f'<g class="bar"><text x="{pad_left - 8}" y="{y + bar_height * 0.7:.1f}" '
            f'text-anchor="end" font-size="12">{escape(short)}</text>'
            f'<rect x="{pad_left}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="#0b57d0"/>'
            f'<text x="{pad_left + w + 4:.1f}" y="{y + bar_height * 0.7:.1f}" '
            f'font-size="12">{value}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
