"""`newsletter worker`: a process that sends the batches of every issue that is `sending`.

Any number of workers (on any number of hosts) share the work through the ledger's leases on
PostgreSQL; a worker killed outright leaves leases that expire and are claimed again (batches
it had already posted become `in_doubt`). SIGTERM or SIGINT: the batches in flight finish and
are recorded, then the worker exits 0. With SQLite, several workers on the same host are safe
too (one atomic UPDATE per claim, one writer at a time); keep the file on a local disk.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from newsletter.delivery.progress import Progress, ProgressCallback, default_worker_id
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sender import Sender
from newsletter.providers.base import Provider
from newsletter.runtime import Runtime

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGTERM/SIGINT set `stop` instead of killing the process mid-batch (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.warning("%s received: finishing the batches in flight", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_worker(
    runtime: Runtime,
    provider: Provider,
    config: SendConfig,
    *,
    worker_id: str | None = None,
    issue_id: int | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> Progress:
    """Send until stopped; `once`: until no batch is left; `issue_id`: that issue only, until
    it is done. A tripped breaker pauses its issue; the worker then carries on with others.
    """
    stop = stop or threading.Event()
    sender = Sender(
        runtime.sessions,
        runtime.settings,
        provider,
        runtime.clock,
        config,
        worker_id=worker_id or default_worker_id(),
        stop=stop,
        progress=progress,
    )
    log.info("worker %s started (concurrency %s)", sender.worker_id, sender.config.concurrency)
    while True:
        sender.run(issue_id, until_idle=once or issue_id is not None)
        if stop.is_set() or once or issue_id is not None or not sender.breaker.open:
            break
        log.error(
            "worker %s: %s; continuing with other issues", sender.worker_id, sender.paused_reason
        )
        sender.reset_breaker()
    log.info("worker %s stopped", sender.worker_id)
    return sender.progress
