"""Simulate readers' (and machines') clicks and opens on a demo issue, to show its statistics.

    python scripts/simulate_clicks.py [ISSUE] [--seed N]

ISSUE is an id, YYYY-MM-DD or list:YYYY-MM-DD (default: the newest sent issue of the list
`daily`). The issue must have been sent with click tracking (the demo's list tracks when
NEWSLETTER_CLICK_TRACKING=true). Writes invented events through `newsletter.engagement`: never
run it on a real list. Then: `newsletter issue stats ISSUE` or the desk's Statistics page.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from newsletter.config import load_settings  # noqa: E402
from newsletter.db.models import Issue  # noqa: E402
from newsletter.db.session import transaction  # noqa: E402
from newsletter.engagement.simulate import simulate_engagement  # noqa: E402
from newsletter.engagement.stats import SENT_STATUSES  # noqa: E402
from newsletter.errors import NewsletterError, NotFoundError  # noqa: E402
from newsletter.issues.assembly import get_issue  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from newsletter.urls import DEFAULT_LIST_SLUG  # noqa: E402
from subscribers.lists import get_list  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("issue", nargs="?", help="id, YYYY-MM-DD or list:YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=20260613)
    args = parser.parse_args()
    try:
        runtime = Runtime.open(load_settings())
        try:
            with transaction(runtime.sessions) as session:
                if args.issue:
                    issue = get_issue(session, args.issue)
                else:
                    issue = session.scalar(
                        select(Issue)
                        .where(
                            Issue.list_id == get_list(session, DEFAULT_LIST_SLUG).id,
                            Issue.status.in_(SENT_STATUSES),
                        )
                        .order_by(Issue.issue_date.desc())
                        .limit(1)
                    )
                    if issue is None:
                        raise NotFoundError(
                            "no sent issue on the list daily: run `newsletter demo`"
                        )
                report = simulate_engagement(session, issue, runtime.clock, seed=args.seed)
        finally:
            runtime.close()
    except NewsletterError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps({
        "issue_id": report.issue_id, "tracked_recipients": report.recipients,
        "reader_clicks": report.reader_clicks, "machine_clicks": report.machine_clicks,
        "opens": report.opens,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
