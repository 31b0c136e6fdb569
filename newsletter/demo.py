"""`newsletter demo`: the whole daily job on embedded defaults, from sample files to an outbox.

It always sends through the outbox provider (the sample addresses are fictional), whatever
NEWSLETTER_PROVIDER says, so trying the demo can never mail anyone. Running it again is safe:
the ledger sends nobody the same issue twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.articles.ingest import ImportReport
from newsletter.articles.samples import import_samples
from newsletter.db.session import transaction
from newsletter.paths import SAMPLES_DIR
from newsletter.pipeline import RunReport, run_daily
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from newsletter.urls import DEFAULT_LIST_SLUG
from subscribers.import_rows import ImportSummary
from subscribers.importing import import_csv
from subscribers.lists import get_or_create_list

SAMPLE_SUBSCRIBERS = SAMPLES_DIR / "subscribers.csv"


@dataclass
class DemoReport:
    articles: ImportReport
    subscribers: ImportSummary
    run: RunReport
    outbox_dir: Path

    @property
    def sent(self) -> int:
        return int(self.run.send.get("accepted", 0) or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "articles": {
                "imported": self.articles.imported,
                "updated": self.articles.updated,
                "unchanged": self.articles.unchanged,
                "rejected": self.articles.rejected,
            },
            "subscribers": self.subscribers.to_dict(),
            "run": self.run.to_dict(),
            "outbox_dir": str(self.outbox_dir),
        }


def run_demo(runtime: Runtime) -> DemoReport:
    """Import the samples, build today's issue, render it and send it to the outbox."""
    settings = runtime.settings
    with transaction(runtime.sessions) as session:
        demo_list = get_or_create_list(
            session, runtime.clock, DEFAULT_LIST_SLUG, settings.newsletter_name
        )
        if settings.click_tracking:  # NEWSLETTER_CLICK_TRACKING: the demo's clicks can be shown
            demo_list.click_tracking = True  # (scripts/simulate_clicks.py, `issue stats`)
    articles = import_samples(runtime.sessions, runtime.clock, settings)
    subscribers = import_csv(
        runtime.sessions,
        runtime.clock,
        SAMPLE_SUBSCRIBERS,
        list_slug=DEFAULT_LIST_SLUG,
        source="demo",
    )
    outbox = OutboxProvider(settings.outbox_dir)
    inline = Runtime(
        settings=dataclasses.replace(settings, provider="outbox", workers="inline"),
        engine=runtime.engine,
        sessions=runtime.sessions,
        clock=runtime.clock,
    )
    try:
        run = run_daily(inline, list_slug=DEFAULT_LIST_SLUG, provider=outbox)
    finally:
        outbox.close()
    return DemoReport(articles, subscribers, run, settings.outbox_dir.resolve())
