"""Expire sign-ups never confirmed, then delete the ones expired long ago.

    python scripts/cleanup_inactive.py [--pending-days 7] [--purge-days 30]

Meant for a daily cron job. Pending subscriptions older than --pending-days become `expired`
(as `newsletter subscribers expire-pending`); expired ones older than --purge-days are deleted,
with any subscriber left without a subscription (data minimisation). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import load_settings  # noqa: E402
from newsletter.db.session import transaction  # noqa: E402
from newsletter.errors import NewsletterError  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from subscribers.consent import expire_pending, purge_expired  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending-days", type=int, default=7)
    parser.add_argument("--purge-days", type=int, default=30)
    args = parser.parse_args()
    try:
        runtime = Runtime.open(load_settings())
        try:
            with transaction(runtime.sessions) as session:
                expired = expire_pending(
                    session, runtime.clock, older_than=timedelta(days=args.pending_days)
                )
                purged = purge_expired(
                    session, runtime.clock, older_than=timedelta(days=args.purge_days)
                )
        finally:
            runtime.close()
    except NewsletterError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(json.dumps({"expired": expired, "purged": purged}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
