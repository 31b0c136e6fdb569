"""Importing a file this project exported gives back exactly what was exported.

The export's formula guard (a quote before =, +, -, @, tab, CR) is taken off again, never put
on an address, and the export's own columns (status, consent, attributes as JSON) are read as
what they are, not kept as attributes.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.db.models import ConsentRecord, Subscriber, Subscription
from subscribers.exporting import iter_export, neutralise, restore, write_export
from subscribers.importing import import_csv
from subscribers.service import unsubscribe_by_email
from tests.fixtures.subscribers import subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


PEOPLE: list[dict[str, Any]] = [
    {"email": "=1+1@example.com", "name": "=1+1", "language": "en"},
    {"email": "-dash@example.com", "name": "-負の名前", "language": "ja"},
    {"email": "+plus@example.jp", "name": "@mention", "language": "both"},
    {"email": "quote@example.com", "name": "'=already quoted", "language": "ja"},
    {"email": "plain@例え.jp", "name": "山田 太郎", "language": "ja"},
    {"email": "noname@example.com", "name": None, "language": "en"},
]


def _subscribers(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as session:
        rows = session.execute(
            select(
                Subscriber.email, Subscriber.name, Subscriber.language, Subscriber.attributes
            ).order_by(Subscriber.email)
        )
        return [tuple(row) for row in rows]


def _forget_everyone(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        for model in (ConsentRecord, Subscription, Subscriber):
            session.execute(delete(model))


def _export(sessions: sessionmaker[Session], path: Path) -> str:
    out = io.StringIO()
    with sessions() as session:
        write_export(iter_export(session), out)
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    return out.getvalue()


@pytest.mark.parametrize("cell", ["=1+1", "'=x", "''-y", "@a", "\tt", "plain", "'plain", ""])
def test_restore_undoes_neutralise(cell: str) -> None:
    assert restore(neutralise(cell)) == cell


def test_export_then_import_gives_identical_subscribers(
    sessions: sessionmaker[Session],
    settings: Settings,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    with sessions() as session, session.begin():
        for person in PEOPLE:
            subscribe(
                session,
                settings,
                clock,
                person["email"],
                **{k: v for k, v in person.items() if k != "email" and v is not None},
            )
        found = session.scalars(select(Subscriber).where(Subscriber.email == "plain@例え.jp")).one()
        found.attributes = {"会社": "例示株式会社", "formula": "=SUM(A1)"}
    before = _subscribers(sessions)
    exported = _export(sessions, tmp_path / "export.csv")
    assert "\r\n=1+1@example.com," in exported  # the address is never guarded
    assert ",'=1+1," in exported  # the name is

    _forget_everyone(sessions)  # as on a new server
    assert _subscribers(sessions) == []
    summary = import_csv(sessions, clock, tmp_path / "export.csv")
    assert (summary.imported, summary.rejected) == (len(PEOPLE), 0), summary.problems
    assert _subscribers(sessions) == before


def test_reimporting_an_export_changes_nobody(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "=1+1@example.com", name="=1+1")
    before = _subscribers(sessions)
    _export(sessions, tmp_path / "export.csv")
    summary = import_csv(sessions, clock, tmp_path / "export.csv")
    assert (summary.imported, summary.updated, summary.unchanged) == (0, 0, 1)
    assert _subscribers(sessions) == before  # no "'=1+1@example.com", no "'=1+1" name


def test_an_exported_unsubscribe_or_pending_sign_up_is_not_made_active_by_the_import(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    with sessions() as session, session.begin():
        subscribe(session, settings, clock, "stay@example.com")
        subscribe(session, settings, clock, "left@example.com")
        subscribe(session, settings, clock, "unsure@example.com", status="pending")
        unsubscribe_by_email(session, clock, email="left@example.com", source="web")
    _export(sessions, tmp_path / "export.csv")
    _forget_everyone(sessions)
    summary = import_csv(sessions, clock, tmp_path / "export.csv")
    assert (summary.imported, summary.not_reactivated) == (1, 2)
    assert sorted(p["reason"] for p in summary.problems) == [
        "pending (never confirmed) in the exported file; import with --status pending",
        "unsubscribed in the exported file; not subscribed again",
    ]
    assert [row[0] for row in _subscribers(sessions)] == ["stay@example.com"]
    pending = import_csv(sessions, clock, tmp_path / "export.csv", status="pending")
    assert pending.imported == 1  # the unconfirmed one, still unconfirmed
