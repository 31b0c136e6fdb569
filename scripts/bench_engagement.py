"""Time an issue's engagement statistics and its retention fold at scale.

    python scripts/bench_engagement.py [--deliveries 200000] [--clicks 1000000] [--url URL]

Writes a list, 10 articles, one sent issue with N tracked accepted deliveries and M click events
(10% machine) plus M/4 pixel fetches into a fresh database (default: a temporary SQLite file),
then times `issue_engagement`, `list_trends` and `purge_events`, and checks the numbers are the
same after the purge. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert  # noqa: E402

from newsletter.clock import FixedClock  # noqa: E402
from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import (  # noqa: E402
    Article,
    ClickEvent,
    Delivery,
    Issue,
    IssueArticle,
    MailingList,
    OpenEvent,
)
from newsletter.db.session import make_engine, session_factory  # noqa: E402
from newsletter.engagement.retention import purge_events  # noqa: E402
from newsletter.engagement.stats import issue_engagement, list_trends  # noqa: E402

T0 = datetime(2026, 6, 12, 22, 0, tzinfo=UTC)
VARIANTS = ("ja", "en", "both", "both-en")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200_000)
    parser.add_argument("--clicks", type=int, default=1_000_000)
    parser.add_argument("--url")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    rng = random.Random(1)
    with sessions.begin() as s:
        ml = MailingList(slug="daily", name="AI日報", click_tracking=True, open_tracking=True,
                         created_at=T0)  # fmt: skip
        s.add(ml)
        s.flush()
        issue = Issue(
            list_id=ml.id, issue_date=date(2026, 6, 13), status="sent", window_start=T0,
            cutoff_at=T0, created_at=T0, built_at=T0, sent_at=T0,
        )  # fmt: skip
        s.add(issue)
        s.flush()
        articles = []
        for n in range(10):
            a = Article(external_id=f"a{n}", url=f"https://e.org/{n}", published_at=T0,
                        content_hash=str(n), created_at=T0, updated_at=T0)  # fmt: skip
            s.add(a)
            s.flush()
            articles.append(a.id)
        s.execute(insert(IssueArticle), [
            {"issue_id": issue.id, "article_id": a, "position": n + 1,
             "snapshot": {"id": f"a{n}", "content": {"ja": {"title": f"記事{n}"}}}}
            for n, a in enumerate(articles)
        ])  # fmt: skip
        issue_id = issue.id
    started = time.perf_counter()
    for chunk in range(0, args.deliveries, 50_000):
        with sessions.begin() as s:
            s.execute(insert(Delivery), [
                {"issue_id": issue_id, "subscriber_id": None, "variant": VARIANTS[i % 4],
                 "tracked": i % 20 != 0, "status": "accepted", "accepted_at": T0,
                 "updated_at": T0}
                for i in range(chunk, min(chunk + 50_000, args.deliveries))
            ])  # fmt: skip
    for chunk in range(0, args.clicks, 100_000):
        with sessions.begin() as s:
            rows = []
            for _ in range(min(100_000, args.clicks - chunk)):
                d = rng.randrange(1, args.deliveries + 1)
                if (d - 1) % 20 == 0:  # an untracked delivery (tracking off) never clicks
                    d = d + 1 if d < args.deliveries else d - 1
                pos = min(int(rng.expovariate(0.4)), 9)
                machine = rng.random() < 0.1
                rows.append({"issue_id": issue_id, "subscriber_id": None, "delivery_id": d,
                             "link_no": pos + 1, "article_id": articles[pos],
                             "kind": ("article", "source", "related")[d % 3],
                             "variant": VARIANTS[(d - 1) % 4], "position": pos + 1,
                             "at": T0 + timedelta(minutes=d % 600), "machine": machine,
                             "reason": "head" if machine else None})  # fmt: skip
            s.execute(insert(ClickEvent), rows)
            s.execute(insert(OpenEvent), [
                {"issue_id": issue_id, "subscriber_id": None, "delivery_id": r["delivery_id"],
                 "variant": r["variant"], "at": r["at"],
                 "source": "apple_mpp" if i % 3 == 0 else "reader"}
                for i, r in enumerate(rows[::4])
            ])  # fmt: skip
    seeded = time.perf_counter() - started
    settings = load_settings({}, database_url=url, secret_keys=(Secret("b" * 32),))
    settings = replace(settings, events_retention_days=90)
    timings: dict[str, float] = {}
    with sessions() as s:
        t = time.perf_counter()
        before = issue_engagement(s, s.get_one(Issue, issue_id), "ja")
        timings["issue_engagement_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        list_trends(s, s.get_one(MailingList, 1), "ja")
        timings["list_trends_s"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    report = purge_events(sessions, settings, FixedClock(T0 + timedelta(days=120)))
    timings["purge_s"] = round(time.perf_counter() - t, 3)
    with sessions() as s:
        t = time.perf_counter()
        after = issue_engagement(s, s.get_one(Issue, issue_id), "ja")
        timings["issue_engagement_after_purge_s"] = round(time.perf_counter() - t, 3)
    print(json.dumps({
        "database": engine.dialect.name, "deliveries": args.deliveries, "clicks": args.clicks,
        "seed_s": round(seeded, 1), **timings, "purged_clicks": report.clicks,
        "same_after_purge": before == after, "reader_clicks": before.reader_clicks,
        "ctr": before.ctr,
    }))  # fmt: skip
    return 0 if before == after else 1


if __name__ == "__main__":
    sys.exit(main())
