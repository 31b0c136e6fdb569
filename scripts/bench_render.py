"""Measure rendering: every variant (ja, en, both, both-en) of an 8-article issue, and the
oversized worst case.

    python scripts/bench_render.py [--runs 20]

Prints one JSON document: median and best wall time per full render (ja + en + both), the
first (cold) render including template compilation, and each variant's HTML/text size.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import Secret, load_settings  # noqa: E402
from newsletter.render.budget import filled_size, transmitted_size  # noqa: E402
from newsletter.render.renderer import render_issue_variants  # noqa: E402
from newsletter.render.view import issue_view_from_dicts  # noqa: E402
from tests.fixtures.render import ISSUE_DATE, make_article  # noqa: E402


def _oversized(n: int) -> dict:
    article = make_article(n, long=True)
    for content in article["content"].values():
        content["key_points"] = content["key_points"] * 2
        content["related"] = content["related"] * 2
    return article


def measure(name: str, articles: list[dict], settings, runs: int) -> dict:  # type: ignore[no-untyped-def]
    view = issue_view_from_dicts(1, ISSUE_DATE, articles)
    start = time.perf_counter()
    rendered = render_issue_variants(view, settings)
    cold = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        render_issue_variants(view, settings)
        times.append(time.perf_counter() - start)
    return {
        "case": name,
        "articles": len(articles),
        "cold_ms": round(cold * 1000, 1),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "best_ms": round(min(times) * 1000, 1),
        "variants": {
            v: {
                "html_bytes_filled": filled_size(r.html, settings.base_url),
                "html_bytes_transmitted": transmitted_size(r.html, settings.base_url),
                "text_bytes": len(r.text.encode("utf-8")),
                "trim_steps": len(r.trimmed),
            }
            for v, r in rendered.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {},
            database_url=f"sqlite:///{tmp}/unused.db",
            var_dir=Path(tmp),
            secret_keys=(Secret("bench-secret-key-0123456789"),),
            base_url="https://news.example.com",
        )
        cases = [
            measure(
                "8 articles, typical", [make_article(n) for n in range(1, 9)], settings, args.runs
            ),
            measure(
                "8 articles, largest realistic",
                [make_article(n, long=True) for n in range(1, 9)],
                settings,
                args.runs,
            ),
            measure(
                "8 articles, oversized (trimmed)",
                [_oversized(n) for n in range(1, 9)],
                settings,
                args.runs,
            ),
        ]
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, Python {platform.python_version()}",
                "runs": args.runs,
                "cases": cases,
            },
            ensure_ascii=False,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
