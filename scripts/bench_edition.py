"""Measure the web edition's issue page: an 8-article issue (the largest realistic articles).

    python scripts/bench_edition.py [--runs 200] [--issues 30]

Builds a SQLite database in a temporary folder with `--issues` sent issues of 8 full bilingual
articles each (snapshots frozen, as after a send), serves the app through Starlette's test
client (the whole ASGI stack: middleware, routing, the database reads that find the issue and
its neighbours) and prints one JSON document:

- `first_request_ms`: the first request of the page, which renders it (cold: templates compiled);
- `render_ms`: rendering the page again from the database with the cache bypassed (the work of
  a first request once templates are compiled), median of `--runs`;
- `warm_request_ms`: a request of a page already rendered (the usual case), median;
- `not_modified_ms`: a reload with If-None-Match (304), median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from newsletter.clock import FixedClock  # noqa: E402
from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.db.models import Article, IssueArticle  # noqa: E402
from newsletter.db.session import transaction  # noqa: E402
from newsletter.db.snapshots import article_to_dict  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from newsletter.web import create_app  # noqa: E402
from newsletter.web.edition import pages  # noqa: E402
from tests.fixtures.articles import store_articles  # noqa: E402
from tests.fixtures.render import make_article  # noqa: E402
from tests.fixtures.web import add_issue, add_list  # noqa: E402


def _median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--issues", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-edition-"))
    settings = load_settings(
        {},
        database_url=f"sqlite:///{folder / 'newsletter.db'}",
        var_dir=folder / "var",
        outbox_dir=folder / "outbox",
        secret_keys=(Secret("bench-secret-key-0123456789abcdef"),),
        base_url="https://news.example.com",
    )
    clock = FixedClock(datetime(2026, 6, 12, 21, 30, tzinfo=UTC))
    runtime = Runtime.open(settings, migrate=True, clock=clock)
    store_articles(
        runtime.sessions, clock, [make_article(n, long=True) for n in range(8 * args.issues)]
    )
    first_day = date(2026, 6, 13) - timedelta(days=args.issues - 1)
    with transaction(runtime.sessions) as session:
        list_id = add_list(session, clock)
        articles = session.scalars(select(Article).order_by(Article.id)).all()
        for k in range(args.issues):
            issue_id = add_issue(session, clock, list_id, issue_date=first_day + timedelta(days=k))
            chosen = articles[8 * k : 8 * k + 8]
            session.execute(
                insert(IssueArticle),
                [
                    {
                        "issue_id": issue_id,
                        "article_id": a.id,
                        "position": p,
                        "pinned": False,
                        "snapshot": article_to_dict(a),
                    }
                    for p, a in enumerate(chosen)
                ],
            )
    middle = first_day + timedelta(days=args.issues // 2)
    url = f"/issues/{middle.isoformat()}?lang=both"
    with TestClient(create_app(runtime), base_url="https://news.example.com") as client:
        start = time.perf_counter()
        first = client.get(url)
        first_ms = round((time.perf_counter() - start) * 1000, 2)
        assert first.status_code == 200, first.text[:500]
        etag = first.headers["etag"]

        cache = client.app.state.edition_cache  # type: ignore[attr-defined]
        renders = []
        for _ in range(args.runs):
            cache._pages.clear()  # bypass the cache: render from the database again
            start = time.perf_counter()
            client.get(url)
            renders.append(time.perf_counter() - start)
        warm, not_modified = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            assert client.get(url).status_code == 200
            warm.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
            not_modified.append(time.perf_counter() - start)
    runtime.close()
    print(
        json.dumps(
            {
                "page": url,
                "articles": 8,
                "page_bytes": len(first.content),
                "first_request_ms": first_ms,
                "render_ms": _median_ms(renders),
                "warm_request_ms": _median_ms(warm),
                "not_modified_ms": _median_ms(not_modified),
                "runs": args.runs,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "page_size_limit": pages.PAGE_SIZE,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
