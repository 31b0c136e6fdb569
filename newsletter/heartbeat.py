"""The scheduler's heartbeat: where it is kept and how often it beats.

The scheduler writes it (`newsletter.scheduler.write_heartbeat`), `newsletter health` reads it;
both take the names from here so neither entry point imports the other.
"""

from __future__ import annotations

from datetime import timedelta

HEARTBEAT_KEY = "scheduler_heartbeat"  # the `meta` row
HEARTBEAT_INTERVAL = timedelta(seconds=30)
