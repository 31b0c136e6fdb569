"""The shipped sample articles, re-dated into today's selection window for `newsletter demo`.

The file keeps real-looking timestamps; on import their relative spacing is kept and they are
moved so the newest lands just before the next send (or before "now", if the send is later),
compressed if needed so all of them fit the 24-hour window. Same ids every time: idempotent.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.articles.ingest import ImportReport, RawRecord, import_records
from newsletter.articles.schema import parse_timestamp
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Article
from newsletter.schedule import cutoff_for, issue_date_for, schedule_for

SAMPLES_SOURCE = "newsletter/samples/articles.json"
_MARGIN = timedelta(minutes=5)


def load_sample_articles() -> list[dict[str, Any]]:
    """The sample articles exactly as shipped."""
    text = resources.files("newsletter").joinpath("samples/articles.json").read_text("utf-8")
    data: list[dict[str, Any]] = json.loads(text)
    return data


def _window(now: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """Where the samples go: inside the next issue's window, and not after `now`."""
    schedule = schedule_for(settings, None)
    issue_date = issue_date_for(settings, None, now)
    cutoff = cutoff_for(issue_date, schedule.tz, schedule.send_time)
    start = cutoff_for(issue_date - timedelta(days=1), schedule.tz, schedule.send_time) + _MARGIN
    return start, min(cutoff, now) - _MARGIN


def rebase(articles: list[dict[str, Any]], now: datetime, settings: Settings) -> None:
    """Move every `published_at` into the window of the issue that is next at `now` (in place)."""
    schedule = schedule_for(settings, None)
    start, end = _window(now, settings)
    times = [parse_timestamp(a["published_at"]) for a in articles]
    newest = max(times)
    span = max(newest - min(times), timedelta(seconds=1))
    scale = min(1.0, max((end - start) / span, 0.0))
    for article, original in zip(articles, times, strict=True):
        moved = end - (newest - original) * scale
        article["published_at"] = moved.astimezone(schedule.tz).isoformat(timespec="seconds")


def _stored_times(session: Session, ids: list[str]) -> dict[str, datetime]:
    query = select(Article.external_id, Article.published_at).where(Article.external_id.in_(ids))
    return {external_id: published for external_id, published in session.execute(query)}


def import_samples(
    sessions: sessionmaker[Session], clock: Clock, settings: Settings
) -> ImportReport:
    """Import the samples re-dated for today; a second run updates the same articles.

    When the stored samples already sit in today's window they keep their times, so running
    the demo again the same day reports them unchanged rather than re-dated.
    """
    articles = load_sample_articles()
    now = clock.now()
    with sessions() as session:
        stored = _stored_times(session, [a["id"] for a in articles])
    start, end = _window(now, settings)
    if len(stored) == len(articles) and all(start <= t <= end for t in stored.values()):
        schedule = schedule_for(settings, None)
        for article in articles:
            when = stored[article["id"]].astimezone(schedule.tz)
            article["published_at"] = when.isoformat(timespec="seconds")
    else:
        rebase(articles, now, settings)
    records = [RawRecord(i, a) for i, a in enumerate(articles, start=1)]
    return import_records(sessions, records, SAMPLES_SOURCE, clock)
