"""An issue's per-article clicks as CSV: one row per article in issue order, for a spreadsheet.

UTF-8 without a byte-order mark (like `subscribers export`), header row first; rates as
fractions (0.1234), not percentages, so a spreadsheet can compute with them.
"""

from __future__ import annotations

import csv
import io
from typing import TextIO

from newsletter.engagement.stats import LINK_KINDS, IssueEngagement
from newsletter.types import VARIANTS

COLUMNS: tuple[str, ...] = (
    "issue_id",
    "date",
    "position",
    "article",
    "title",
    "clicks",
    "unique_clickers",
    "ctr",
    *(f"clicks_{v}" for v in VARIANTS),
    *(f"clicks_{k}" for k in LINK_KINDS),
    "tracked_recipients",
)


def write_engagement_csv(stats: IssueEngagement, out: TextIO) -> int:
    """Write the header and one row per article; returns the number of article rows."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for a in stats.articles:
        writer.writerow(
            [
                stats.issue_id,
                stats.date.isoformat(),
                a.position,
                a.ref,
                a.title,
                a.clicks,
                a.unique_clickers,
                "" if a.ctr is None else f"{a.ctr:.4f}",
                *(a.clicks_by_variant.get(v, 0) for v in VARIANTS),
                *(a.clicks_by_kind.get(k, 0) for k in LINK_KINDS),
                stats.tracked_recipients,
            ]
        )
    return len(stats.articles)


def engagement_csv(stats: IssueEngagement) -> str:
    buffer = io.StringIO()
    write_engagement_csv(stats, buffer)
    return buffer.getvalue()
