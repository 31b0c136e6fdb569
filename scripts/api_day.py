"""A whole day over the HTTP API alone: import articles, add subscribers, build, approve,
send, read the statistics.

    NEWSLETTER_API_TOKEN=nl_... python scripts/api_day.py --base-url http://127.0.0.1:8000 \
        [--articles FILE.json] [--subscribers FILE.csv] [--list daily]

Needs an admin token (`newsletter tokens create --name day --role admin`). Uses only HTTP
(httpx), no package function: what a script on another machine does. The articles (default:
the project's samples) are re-dated to the last minutes so they fall in the next issue's
window. Every POST that creates or sends carries an Idempotency-Key, so running the script
again after a dropped connection does nothing twice. Prints one JSON summary; exit 0 when
the issue was sent to everyone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

SAMPLES = Path(__file__).resolve().parent.parent / "newsletter" / "samples"
FINISHED = {"sent", "sent_with_failures", "failed", "cancelled", "skipped"}


class Api:
    def __init__(self, base_url: str, token: str, run_id: str) -> None:
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        self.run_id = run_id

    def call(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> Any:
        headers = {"Idempotency-Key": f"{self.run_id}-{key}"} if key else {}
        response = self.client.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            problem = response.json()
            raise SystemExit(f"error: {method} {path}: {problem['status']} {problem['detail']}")
        return response.json()


def redated_articles(path: Path, now: datetime) -> list[dict[str, Any]]:
    articles = json.loads(path.read_text(encoding="utf-8"))
    for index, article in enumerate(articles, start=1):
        article["published_at"] = (now - timedelta(minutes=index)).isoformat()
    return articles  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--articles", type=Path, default=SAMPLES / "articles.json")
    parser.add_argument("--subscribers", type=Path, default=SAMPLES / "subscribers.csv")
    parser.add_argument("--list", dest="list_slug", default="daily")
    parser.add_argument("--timeout", type=float, default=120, help="Seconds to wait for the send")
    parser.add_argument("--run-id", default=None, help="Idempotency-Key prefix (default: random)")
    parser.add_argument(
        "--published-before",
        type=datetime.fromisoformat,
        default=None,
        help="Re-date the articles to the minutes before this time (default: now); with the "
        "same --run-id, a second run is an exact retry and every POST gets its first answer",
    )
    args = parser.parse_args()
    token = os.environ.get("NEWSLETTER_API_TOKEN")
    if not token:
        print("error: set NEWSLETTER_API_TOKEN to an admin token", file=sys.stderr)
        return 64
    api = Api(args.base_url, token, args.run_id or uuid.uuid4().hex[:12])
    summary: dict[str, Any] = {}

    # 1. Articles, in the import format.
    now = args.published_before or datetime.now(UTC)
    report = api.call(
        "POST", "/articles", key="articles", json=redated_articles(args.articles, now)
    )
    summary["articles"] = {k: report[k] for k in ("imported", "updated", "unchanged", "rejected")}

    # 2. Subscribers: one by one, then a CSV file in one upload.
    added = api.call(
        "POST", "/subscribers", key="editor",
        json={"email": "editor.desk@example.jp", "name": "編集 デスク", "language": "both",
              "list": args.list_slug},
    )  # fmt: skip
    with args.subscribers.open("rb") as handle:
        imported = api.call(
            "POST", "/subscribers/import", key="import",
            files={"file": (args.subscribers.name, handle, "text/csv")},
            data={"list": args.list_slug},
        )  # fmt: skip
    summary["subscribers"] = {
        "added": added["email"],
        "imported": imported["imported"],
        "rejected": imported["rejected"],
        "problems": imported["problems"][:5],
    }

    # 3. Build the next issue and look at the selection.
    built = api.call("POST", "/issues", key="build", json={"list": args.list_slug})
    if built["issue"] is None:
        print(f"error: no issue built: {built['reason']}", file=sys.stderr)
        return 65
    issue_id = built["issue"]["id"]
    shown = api.call("GET", f"/issues/{issue_id}")
    summary["issue"] = {
        "id": issue_id,
        "date": shown["issue"]["date"],
        "articles": [a["id"] for a in shown["issue"]["articles"]],
        "left_out": sum(1 for d in shown["explain"] if not d["selected"]),
    }

    # 4. Approve, then send (the server sends it; follow it).
    if shown["issue"]["status"] == "built":  # a day already sent is not approved again
        api.call("POST", f"/issues/{issue_id}/approve", key="approve")
    started = api.call("POST", f"/issues/{issue_id}/send", key="send")
    deadline = time.monotonic() + args.timeout
    status = started["status"]
    while status["issue_status"] not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.2)
        status = api.call("GET", f"/issues/{issue_id}/status")
    summary["send"] = {"status": status["issue_status"], "recipients": status["recipients"]}

    # 5. Statistics, per issue and per list.
    stats = api.call("GET", f"/issues/{issue_id}/stats")
    list_stats = api.call("GET", f"/lists/{args.list_slug}/stats", params={"issues": 3})
    summary["stats"] = {
        "issue_events": stats["events"],
        "ledger_total": stats["ledger"]["total"],
        "list_active": list_stats["subscribers"]["status"]["active"],
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0 if status["issue_status"] == "sent" else 75


if __name__ == "__main__":
    sys.exit(main())
