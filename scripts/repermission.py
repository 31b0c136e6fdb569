"""Send the double opt-in confirmation to every pending subscription of a list.

    python scripts/repermission.py [--list daily] [--limit N] [--dry-run]

Use after `newsletter subscribers import FILE --status pending`: each person gets the same
confirmation email as a web sign-up (through the configured provider) and is mailed the
newsletter only after clicking it. Unconfirmed ones expire (`newsletter subscribers
expire-pending`). Settings come from the environment as for the `newsletter` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import load_settings  # noqa: E402
from newsletter.db.session import transaction  # noqa: E402
from newsletter.errors import NewsletterError  # noqa: E402
from newsletter.runtime import Runtime  # noqa: E402
from subscribers.consent import resend_confirmations  # noqa: E402
from subscribers.service import subscriber_stats  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", default="daily", dest="list_slug")
    parser.add_argument("--limit", type=int, help="at most this many emails in this run")
    parser.add_argument("--dry-run", action="store_true", help="only count pending subscriptions")
    args = parser.parse_args()
    try:
        settings = load_settings()
        runtime = Runtime.open(settings)
        try:
            with transaction(runtime.sessions) as session:
                if args.dry_run:
                    pending = subscriber_stats(session, list_slug=args.list_slug)["status"]
                    print(json.dumps({"pending": pending["pending"], "sent": 0}))
                    return 0
                from newsletter.providers.factory import make_provider

                provider = make_provider(settings)
                try:
                    sent = resend_confirmations(
                        session,
                        settings,
                        runtime.clock,
                        list_slug=args.list_slug,
                        provider=provider,
                        limit=args.limit,
                    )
                finally:
                    provider.close()
            print(json.dumps({"list": args.list_slug, "sent": sent}, ensure_ascii=False))
        finally:
            runtime.close()
    except NewsletterError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
