"""Several sending processes of one `send_issue` share an issue on SQLite: each recipient once.

The helpers are forked after planning and claim batches from the same SQLite file as the
parent; the claim is one atomic UPDATE and SQLite lets one writer in at a time (WAL, with a
busy timeout), so no batch is sent by two processes.
"""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.models import SendBatch
from newsletter.db.session import make_engine, session_factory
from newsletter.delivery.issue_state import recipient_counts
from newsletter.delivery.progress import Progress
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.providers.sendgrid import SendGridProvider
from newsletter.testing.sendgrid_server import SendGridServer
from tests.fixtures.delivery import seed_send
from tests.fixtures.providers import SENDGRID_TEST_KEY

SUBSCRIBERS = 1200


@pytest.fixture
def sqlite_sessions(tmp_path: Path, migrated_sqlite_template: Path):
    shutil.copyfile(migrated_sqlite_template, tmp_path / "send.db")
    engine = make_engine(f"sqlite:///{tmp_path / 'send.db'}")
    yield session_factory(engine)
    engine.dispose()


def _settings(tmp_path: Path, server: SendGridServer) -> Settings:
    return load_settings(
        {"NEWSLETTER_FROM": "AI日報 <news@example.com>"},
        database_url=f"sqlite:///{tmp_path / 'send.db'}",
        provider="sendgrid",
        sendgrid_api_key=Secret(SENDGRID_TEST_KEY),
        sendgrid_host=server.url,
        secret_keys=(Secret("processes-test-secret-0123456789abcdef"),),
        base_url="https://news.example.com",
        var_dir=tmp_path / "var",
    )


def _provider(settings: Settings) -> SendGridProvider:
    assert settings.sendgrid_api_key is not None
    return SendGridProvider(settings.sendgrid_api_key, settings.sendgrid_host, timeout=10)


def _counts(sessions: sessionmaker[Session], issue_id: int) -> dict[str, int]:
    with sessions() as session:
        return {k: v for k, v in recipient_counts(session, issue_id).items() if v}


@pytest.mark.parametrize("processes", [2, 3])
def test_several_processes_on_sqlite_send_an_issue_exactly_once(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session], processes: int
) -> None:
    seeded = seed_send(sqlite_sessions, SUBSCRIBERS)
    with SendGridServer(api_key=SENDGRID_TEST_KEY) as server:
        server.configure(latency=0.01)  # batches overlap, so every process gets some
        settings = _settings(tmp_path, server)
        config = SendConfig.from_settings(settings, batch_size=25, concurrency=2)
        seen: list[Progress] = []
        provider = _provider(settings)
        try:
            report = send_issue(
                sqlite_sessions,
                settings,
                provider,
                seeded.issue_id,
                SYSTEM_CLOCK,
                config=config,
                processes=processes,
                provider_factory=partial(_provider, settings),
                progress=seen.append,
            )
        finally:
            provider.close()
        stats = server.stats()
    assert stats["duplicates"] == 0
    assert stats["unique_recipients"] == SUBSCRIBERS
    assert report.accepted == SUBSCRIBERS and report.failed == 0 and report.in_doubt == 0
    assert report.requests == SUBSCRIBERS // 25
    assert _counts(sqlite_sessions, seeded.issue_id) == {"accepted": SUBSCRIBERS}
    with sqlite_sessions() as session:
        workers = Counter(session.scalars(select(SendBatch.worker)))
    assert len(workers) == processes  # every process sent batches
    assert seen and max(p.accepted for p in seen) == SUBSCRIBERS  # the bar counts them all
    assert report.status is not None and report.status.recipients["accepted"] == SUBSCRIBERS


def test_a_stop_reaches_the_helper_processes_and_a_second_send_finishes_the_issue(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session]
) -> None:
    seeded = seed_send(sqlite_sessions, SUBSCRIBERS)
    with SendGridServer(api_key=SENDGRID_TEST_KEY) as server:
        server.configure(latency=0.05)
        settings = _settings(tmp_path, server)
        config = SendConfig.from_settings(settings, batch_size=25, concurrency=2)
        stop = threading.Event()

        def stop_early(progress: Progress) -> None:
            if progress.accepted >= 200:
                stop.set()

        provider = _provider(settings)
        try:
            first = send_issue(
                sqlite_sessions,
                settings,
                provider,
                seeded.issue_id,
                SYSTEM_CLOCK,
                config=config,
                processes=2,
                provider_factory=partial(_provider, settings),
                progress=stop_early,
                stop=stop,
            )
            assert 200 <= first.accepted < SUBSCRIBERS
            assert first.in_doubt == 0  # batches in flight were finished and recorded
            second = send_issue(
                sqlite_sessions,
                settings,
                provider,
                seeded.issue_id,
                SYSTEM_CLOCK,
                config=config,
                processes=2,
                provider_factory=partial(_provider, settings),
            )
        finally:
            provider.close()
        stats = server.stats()
    assert first.accepted + second.accepted == SUBSCRIBERS
    assert stats["duplicates"] == 0 and stats["unique_recipients"] == SUBSCRIBERS
    assert _counts(sqlite_sessions, seeded.issue_id) == {"accepted": SUBSCRIBERS}


def test_more_processes_need_a_provider_factory(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session]
) -> None:
    seeded = seed_send(sqlite_sessions, 3)
    settings = load_settings({}, database_url=f"sqlite:///{tmp_path / 'send.db'}")
    with pytest.raises(ValueError, match="provider_factory"):
        send_issue(sqlite_sessions, settings, object(), seeded.issue_id, SYSTEM_CLOCK, processes=2)  # type: ignore[arg-type]


def test_a_send_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    from newsletter.delivery.gc_tuning import quiet_gc as _quiet_gc

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with _quiet_gc():
        assert gc.get_threshold()[0] >= 10_000 and gc.get_freeze_count() >= frozen
        with _quiet_gc():  # a second send in the same process (threads of one worker)
            pass
        assert gc.get_threshold()[0] >= 10_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_killing_issue_send_also_ends_the_processes_it_forked(
    sqlite_sessions: sessionmaker[Session],
    tmp_path: Path,
    sendgrid_process,  # type: ignore[no-untyped-def]
) -> None:
    """SIGKILL of `issue send --processes 2`: the helper notices its parent is gone, records
    its batches in flight and exits, instead of sending on unsupervised."""
    import os
    import signal
    import subprocess
    import time

    from tests.fixtures.delivery import newsletter_command, newsletter_env, wait_for

    seeded = seed_send(sqlite_sessions, 3000)
    server = sendgrid_process("--latency", "0.1")
    env = newsletter_env(f"sqlite:///{tmp_path / 'send.db'}", server.url, tmp_path)
    command = newsletter_command(
        "issue", "send", str(seeded.issue_id), "--processes", "2", "--batch-size", "25",
        "--concurrency", "2",
    )  # fmt: skip
    parent = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children_file = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    helpers: list[int] = []

    def forked() -> bool:
        helpers[:] = [int(p) for p in children_file.read_text().split()]
        return bool(helpers) and server.stats()["accepted_recipients"] >= 200

    wait_for(forked, 60, "the helper process to send")
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)

    def helpers_gone() -> bool:
        for pid in helpers:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            status = Path(f"/proc/{pid}/status").read_text()
            if "State:\tZ" not in status:
                return False
        return True

    wait_for(helpers_gone, 15, "the helper to notice its parent died and exit")
    sent = server.stats()["accepted_recipients"]
    time.sleep(1.0)
    assert server.stats()["accepted_recipients"] == sent  # nobody sends unsupervised
    assert sent < 3000
