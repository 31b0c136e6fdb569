"""Time the daily selection (indexed window query + pure selection) over many stored articles.

    python scripts/bench_selection.py [--articles 100000] [--database-url URL] [--import-articles N]

Stores N articles spread evenly over the year before the issue date (plus 30 sent issues of
8 articles each, so the "already sent" check has history to search), then times
`select_for` for one day several times and prints one JSON line with the median.
Without --database-url it uses a temporary SQLite file.

With --import-articles N (default 5000) it also times `import_sources` on a JSON file of N
full-size bilingual articles (first import, identical re-import, changed re-import) into a
fresh database and prints a second JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from newsletter.articles.ingest import import_sources  # noqa: E402
from newsletter.clock import FixedClock  # noqa: E402
from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.db.migrate import upgrade  # noqa: E402
from newsletter.db.models import Article, Issue, IssueArticle  # noqa: E402
from newsletter.db.session import make_engine, session_factory, transaction  # noqa: E402
from newsletter.issues.assembly import load_list, select_for  # noqa: E402

ISSUE_DATE = date(2026, 6, 13)


def populate(sessions, settings, clock, count: int) -> int:  # type: ignore[no-untyped-def]
    end = datetime(2026, 6, 12, 22, 0, tzinfo=UTC)
    step = timedelta(days=365) / count
    now = clock.now()
    with transaction(sessions) as session:
        mailing_list = load_list(session, settings, clock, "daily")
        list_id = mailing_list.id
        batch = []
        for i in range(count):
            batch.append(
                {
                    "external_id": f"bench-{i}",
                    "url": f"https://example.org/a/{i}",
                    "published_at": end - step * i,
                    "importance": (i * 37) % 101,
                    "tags": [],
                    "content_hash": "0" * 64,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 5000:
                session.execute(insert(Article), batch)
                batch = []
        if batch:
            session.execute(insert(Article), batch)
        # 30 earlier issues, each sending 8 of that day's articles.
        for day in range(1, 31):
            issue_date = ISSUE_DATE - timedelta(days=day)
            cutoff = datetime.combine(issue_date, datetime.min.time(), tzinfo=UTC)
            issue = Issue(
                list_id=list_id,
                issue_date=issue_date,
                status="sent",
                window_start=cutoff - timedelta(days=1),
                cutoff_at=cutoff - timedelta(hours=2),
                created_at=now,
                built_at=now,
            )
            session.add(issue)
            session.flush()
            ids = session.scalars(
                select(Article.id)
                .where(Article.published_at <= issue.cutoff_at)
                .order_by(Article.published_at.desc())
                .limit(8)
            ).all()
            session.execute(
                insert(IssueArticle),
                [
                    {"issue_id": issue.id, "article_id": a, "position": n, "pinned": False}
                    for n, a in enumerate(ids, 1)
                ],
            )
    return list_id


def bench_import(url: str, count: int, folder: Path) -> dict[str, object]:
    """Import `count` articles three ways; seconds for each."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    clock = FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC))
    point = {"heading": "要点", "body": "本文" * 100}
    articles: list[dict[str, Any]] = [
        {
            "id": f"import-{i}",
            "url": f"https://example.org/a/{i}",
            "published_at": "2026-06-13T06:00:00+09:00",
            "importance": i % 101,
            "tags": ["bench"],
            "content": {
                lang: {
                    "title": f"見出し {i}",
                    "summary": "要約" * 60,
                    "key_points": [point] * 3,
                    "impact_analysis": "分析" * 150,
                    "body": "段落" * 1000,
                }
                for lang in ("ja", "en")
            },
        }
        for i in range(count)
    ]
    path = folder / "import.json"
    timings: dict[str, object] = {}
    for label in ("first_s", "unchanged_s", "changed_s"):
        if label == "changed_s":
            for article in articles:
                article["importance"] = (int(article["importance"]) + 1) % 101
        path.write_text(json.dumps(articles, ensure_ascii=False), encoding="utf-8")
        t0 = time.perf_counter()
        report = import_sources(sessions, [str(path)], clock)
        timings[label] = round(time.perf_counter() - t0, 2)
        assert report.ok, report.messages()[:3]
    engine.dispose()
    return {
        "bench": "import",
        "database": engine.dialect.name,
        "articles": count,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        **timings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--import-articles", type=int, default=5_000)
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory()
    url = args.database_url or f"sqlite:///{tmp.name}/bench.db"
    settings = load_settings(
        {}, database_url=url, secret_keys=(Secret("bench-secret-key-0123456789"),)
    )
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    clock = FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC))

    started = time.perf_counter()
    populate(sessions, settings, clock, args.articles)
    load_s = time.perf_counter() - started

    timings = []
    chosen = candidates = 0
    for _ in range(args.repeat):
        with sessions() as session:
            mailing_list = load_list(session, settings, clock, "daily")
            t0 = time.perf_counter()
            selection = select_for(session, settings, mailing_list, ISSUE_DATE)
            timings.append(time.perf_counter() - t0)
            chosen, candidates = len(selection.chosen), len(selection.decisions)
    print(
        json.dumps(
            {
                "bench": "selection",
                "database": engine.dialect.name,
                "articles": args.articles,
                "candidates_in_window": candidates,
                "selected": chosen,
                "median_s": round(statistics.median(timings), 4),
                "max_s": round(max(timings), 4),
                "populate_s": round(load_s, 1),
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        )
    )
    engine.dispose()
    if args.import_articles and args.database_url is None:
        import_url = f"sqlite:///{tmp.name}/import.db"
        print(json.dumps(bench_import(import_url, args.import_articles, Path(tmp.name))))
    tmp.cleanup()


if __name__ == "__main__":
    main()
