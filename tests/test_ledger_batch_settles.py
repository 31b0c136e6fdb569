"""A batch the provider takes whole settles its members by its own row, on SQLite and
PostgreSQL: the members read as accepted everywhere (counts, one recipient's outcome, the
erasure export, engagement), though the sender wrote no member row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.migrate import alembic_config, upgrade
from newsletter.db.models import Delivery, Issue, SendBatch
from newsletter.db.session import make_engine, session_factory
from newsletter.delivery import in_doubt, issue_state, ledger, recording
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.status import recipient_status, send_status
from newsletter.types import FailureKind
from subscribers.erasure import export_personal_data
from tests.fixtures.delivery import SeededSend, seed_send

LEASE_S = 60


def _sending_batch(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, seeded: SeededSend
) -> ledger.PreparedBatch:
    """The first batch of 10, claimed and committed as `sending`."""
    with sessions.begin() as session:
        issue = session.get_one(Issue, seeded.issue_id)
        issue.status = "sending"
        enqueue_issue(session, issue, settings, clock, batch_size=10)
    with sessions() as session:
        claimed = ledger.claim_batch(session, "w", clock, LEASE_S, seeded.issue_id)
        assert claimed is not None
        prepared = ledger.prepare_batch(session, claimed, "w", clock, LEASE_S)
    assert prepared is not None and len(prepared.recipients) == 10
    return prepared


def _record(
    sessions: sessionmaker[Session],
    prepared: ledger.PreparedBatch,
    clock: FixedClock,
    accepted: list[int],
    failed: dict[int, str] | None = None,
) -> list[int]:
    attempted = [r.id for r in prepared.recipients]
    with sessions.begin() as session:
        return recording.record_accepted(
            session,
            prepared.batch.id,
            attempted,
            accepted,
            failed or {},
            provider="sendgrid",
            provider_message_id="msg-1",
            clock=clock,
        )


def test_a_batch_accepted_whole_writes_its_own_row_and_no_member_row(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    prepared = _sending_batch(sessions, settings, clock, delivery_seed)
    ids = [r.id for r in prepared.recipients]
    clock.advance(seconds=5)
    assert _record(sessions, prepared, clock, ids) == []
    with sessions() as session:
        batch = session.get_one(SendBatch, prepared.batch.id)
        members = session.execute(
            select(Delivery.status, Delivery.accepted_at).where(Delivery.id.in_(ids))
        ).all()
    assert (batch.status, batch.accepted, batch.accepted_at) == ("accepted", 10, clock.now())
    assert set(members) == {("queued", None)}


def test_members_of_a_batch_accepted_whole_count_and_read_as_accepted(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    prepared = _sending_batch(sessions, settings, clock, delivery_seed)
    member = prepared.recipients[0]
    clock.advance(seconds=5)
    _record(sessions, prepared, clock, [r.id for r in prepared.recipients])
    with sessions() as session:
        status = send_status(session, delivery_seed.issue_id)
        outcome = recipient_status(session, delivery_seed.issue_id, member.email)
    assert status.recipients["accepted"] == 10
    assert status.recipients["queued"] == 20  # the two batches not sent yet
    assert (outcome.status, outcome.accepted_at) == ("accepted", clock.now())


def test_a_subscribers_export_shows_a_batch_settled_delivery_as_accepted(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    prepared = _sending_batch(sessions, settings, clock, delivery_seed)
    _record(sessions, prepared, clock, [r.id for r in prepared.recipients])
    with sessions() as session:
        document = export_personal_data(session, email=prepared.recipients[0].email)
    assert [(d["status"], d["accepted_at"]) for d in document["deliveries"]] == [
        ("accepted", clock.now().isoformat())
    ]


def test_members_turned_in_doubt_before_the_late_answer_are_accepted_with_it(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    prepared = _sending_batch(sessions, settings, clock, delivery_seed)
    clock.advance(seconds=LEASE_S + 1)
    with sessions.begin() as session:
        assert in_doubt.reap_expired(session, clock) == 1
    _record(sessions, prepared, clock, [r.id for r in prepared.recipients])
    with sessions() as session:
        status = send_status(session, delivery_seed.issue_id)
    assert (status.recipients["accepted"], status.recipients["in_doubt"]) == (10, 0)
    assert status.in_doubt_batches == []


def test_a_partly_refused_batch_settles_each_member_by_its_own_row(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    delivery_seed: SeededSend,
) -> None:
    prepared = _sending_batch(sessions, settings, clock, delivery_seed)
    ids = [r.id for r in prepared.recipients]
    _record(sessions, prepared, clock, ids[2:], {ids[0]: "550 no such user", ids[1]: "bad"})
    with sessions() as session:
        batch = session.get_one(SendBatch, prepared.batch.id)
        status = send_status(session, delivery_seed.issue_id)
        rows = dict(
            session.execute(select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))).all()
        )
    assert (batch.status, batch.accepted) == ("accepted", 0)
    assert [rows[i] for i in ids] == ["failed"] * 2 + ["accepted"] * 8
    assert (status.recipients["accepted"], status.recipients["failed"]) == (8, 2)


def _sqlite_sending(
    tmp_path: Path, clock: FixedClock
) -> tuple[str, Engine, sessionmaker[Session], SeededSend, ledger.PreparedBatch]:
    """A SQLite database of its own (for what only SQLite can show), a batch of 10 `sending`."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    settings = load_settings(
        {}, database_url=url, var_dir=tmp_path, secret_keys=(Secret("k" * 32),)
    )
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    seeded = seed_send(sessions, 30)
    return url, engine, sessions, seeded, _sending_batch(sessions, settings, clock, seeded)


def test_downgrading_gives_batch_settled_members_their_rows_back(
    tmp_path: Path, clock: FixedClock
) -> None:
    url, engine, sessions, seeded, prepared = _sqlite_sending(tmp_path, clock)
    clock.advance(seconds=5)
    _record(sessions, prepared, clock, [r.id for r in prepared.recipients])
    engine.dispose()
    command.downgrade(alembic_config(engine), "0007")
    with make_engine(url).connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT status, accepted_at, count(*) FROM deliveries GROUP BY status, accepted_at"
        ).all()
    by_status = {status: (at, n) for status, at, n in rows}
    assert by_status["queued"] == (None, 20)
    accepted_at, accepted = by_status["accepted"]
    assert accepted == 10 and accepted_at.startswith(clock.now().strftime("%Y-%m-%d %H:%M:%S"))


def test_a_retry_finds_its_recipients_through_the_batch_index_not_the_issues_rows(
    tmp_path: Path, clock: FixedClock
) -> None:
    """A sent issue's rows all still say `queued` (their batches settled them): a retry must
    not read them all to find the few it queues again."""
    _, engine, sessions, seeded, prepared = _sqlite_sending(tmp_path, clock)
    with sessions.begin() as session:
        recording.fail_batch(session, prepared.batch.id, "503", clock, kind=FailureKind.SEND)
    grouping: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if "row_number()" in statement:
            grouping.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    with sessions.begin() as session:
        report = issue_state.retry_failed(session, seeded.issue_id, clock, batch_size=10)
    assert report.requeued == 10
    ((statement, parameters),) = grouping
    with engine.connect() as connection:
        plan = " / ".join(
            row[3]
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        )
    engine.dispose()
    assert "ix_deliveries_batch_members (batch_id=? AND status=?)" in plan, plan
