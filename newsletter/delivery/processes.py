"""Helper sending processes of one `send_issue` call: forked after planning, each with its own
connections and provider, sharing the batches through the ledger's claims like `newsletter
worker` processes; counts in shared memory; they stop when told to or when their parent dies.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.delivery.progress import (
    SHARED_COUNTS,
    Progress,
    ProgressCallback,
    ProviderFactory,
    default_worker_id,
)
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sender import Sender

log = logging.getLogger(__name__)


class HelperProcesses:
    """Helper sending processes of one `send_issue` call (forked after planning)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.processes: list[Any] = []
        self.paused_reason: str | None = None
        self._errors: list[str] = []
        self._pipes: list[Any] = []
        if count:
            self._context = multiprocessing.get_context("fork")
            self._counts = self._context.Array("q", count * len(SHARED_COUNTS), lock=False)

    def start(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        provider_factory: ProviderFactory,
        issue_id: int,
        clock: Clock,
        config: SendConfig,
        worker_id: str | None,
    ) -> None:
        for n in range(self.count):
            receive, send = self._context.Pipe(duplex=False)
            name = f"{worker_id}/{n + 1}" if worker_id else None
            process = self._context.Process(
                target=_helper_main,
                args=(send, self._counts, n, sessions, settings, provider_factory, issue_id,
                      clock, config, name),
                name=f"send-helper-{n + 1}",
                daemon=True,
            )  # fmt: skip
            process.start()
            send.close()
            self.processes.append(process)
            self._pipes.append(receive)

    def wrap(self, progress: ProgressCallback | None) -> ProgressCallback | None:
        """The callback sees this process's counts plus the helpers' (shared memory)."""
        if progress is None or not self.count:
            return progress

        def combined(own: Progress) -> None:
            total = Progress(total=own.total, done_before=own.done_before, started=own.started)
            for name in SHARED_COUNTS:
                setattr(total, name, getattr(own, name) + self._sum(name))
            progress(total)

        return combined

    def _sum(self, name: str) -> int:
        index, width = SHARED_COUNTS.index(name), len(SHARED_COUNTS)
        return sum(self._counts[n * width + index] for n in range(self.count))

    def join(self, stop: threading.Event) -> None:
        """Wait for every helper; if this process was told to stop, tell them too (SIGTERM:
        they finish and record their batches in flight)."""
        for process, pipe in zip(self.processes, self._pipes, strict=True):
            while process.is_alive():
                if stop.is_set() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)
                process.join(0.05)
            if pipe.poll():
                kind, detail = pipe.recv()
                if kind == "error":
                    self._errors.append(detail)
                elif detail and self.paused_reason is None:
                    self.paused_reason = detail
            elif process.exitcode != 0:
                self._errors.append(f"exit code {process.exitcode}")
            pipe.close()
        if self._errors:
            raise RuntimeError(f"a sending process failed: {self._errors[0]}")

    def add_to(self, own: Progress) -> Progress:
        if self.count:
            for name in SHARED_COUNTS:
                setattr(own, name, getattr(own, name) + self._sum(name))
        return own


def _stop_when_orphaned(stop: threading.Event, interval_s: float = 0.2) -> None:
    """A helper whose parent died (SIGKILL of `issue send`) finishes its batches in flight,
    records them, and exits, instead of sending on unsupervised."""
    parent = os.getppid()

    def watch() -> None:
        while not stop.wait(interval_s):
            if os.getppid() != parent:
                log.warning("the sending process that started this helper is gone; stopping")
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _helper_main(
    pipe: Any,
    counts: Any,
    slot: int,
    sessions: sessionmaker[Session],
    settings: Settings,
    provider_factory: ProviderFactory,
    issue_id: int,
    clock: Clock,
    config: SendConfig,
    worker_id: str | None,
) -> None:
    """A forked helper: fresh connections and provider, the same loop, counts in shared memory."""
    stop = threading.Event()  # SIGTERM from the parent (or SIGINT from a terminal) sets it
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _stop_when_orphaned(stop)
    bind = sessions.kw.get("bind")
    if bind is not None:
        bind.dispose(close=False)  # the parent's pooled connections stay the parent's
    width = len(SHARED_COUNTS)

    def publish(progress: Progress) -> None:
        for index, name in enumerate(SHARED_COUNTS):
            counts[slot * width + index] = getattr(progress, name)

    provider = provider_factory()
    try:
        sender = Sender(
            sessions,
            settings,
            provider,
            clock,
            config,
            worker_id=worker_id or default_worker_id(),
            stop=stop,
            progress=publish,
        )
        sender.run(issue_id)
        publish(sender.progress)
        pipe.send(("done", sender.paused_reason))
    except BaseException as err:
        log.exception("sending process failed")
        pipe.send(("error", repr(err)))
    finally:
        provider.close()
        pipe.close()
