"""What a send reports while it runs, and how a sending process is named."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.providers.base import Provider


def default_worker_id() -> str:
    """host:pid, so `issue status` says which process holds which batch."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Progress:
    """Counters of one run, passed to the progress callback after every batch."""

    total: int = 0  # recipients of the issue(s) in the ledger when the run started
    done_before: int = 0  # already settled when the run started
    accepted: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0  # recipients whose batch was queued again
    in_doubt: int = 0
    batches: int = 0
    requests: int = 0
    waiting: int = 0  # in-doubt batches waiting for provider events or their grace window
    started: float = field(default_factory=time.monotonic)

    @property
    def settled(self) -> int:
        return self.accepted + self.failed + self.skipped + self.in_doubt

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.settled / elapsed if elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]
ProviderFactory = Callable[[], Provider]


# Progress counters a helper process shares with the process that started it.
SHARED_COUNTS = ("accepted", "failed", "skipped", "retried", "in_doubt", "batches", "requests")
