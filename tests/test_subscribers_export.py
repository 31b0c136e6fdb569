"""Export with status and consent, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from newsletter.clock import FixedClock
from newsletter.config import Settings
from newsletter.errors import ValidationError
from subscribers.exporting import iter_export, neutralise, write_export
from subscribers.lists import create_list
from subscribers.service import unsubscribe_by_email
from tests.fixtures.subscribers import subscribe


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


@pytest.mark.parametrize("cell", ["=1+2", "+81 3", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_cells_are_prefixed_with_a_quote(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


def test_ordinary_cells_are_left_alone() -> None:
    assert neutralise("山田 太郎") == "山田 太郎"
    assert neutralise("a=b") == "a=b"


def test_csv_export_has_status_consent_and_neutralised_names(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    subscribe(sub_session, settings, clock, "f@example.com", name='=HYPERLINK("x")')
    out = io.StringIO()
    assert write_export(iter_export(sub_session), out) == 1
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["email"] == "f@example.com"
    assert row["name"] == '\'=HYPERLINK("x")'
    assert row["status"] == "active"
    assert row["consent_source"] == "admin"
    assert row["consent_at"] == clock.now().isoformat()


def test_jsonl_export_of_one_list_keeps_values_as_they_are(
    sub_session: Session, settings: Settings, clock: FixedClock
) -> None:
    create_list(sub_session, clock, slug="weekly", name="Weekly")
    subscribe(sub_session, settings, clock, "a@example.com", name="-dash", list_slug="weekly")
    subscribe(sub_session, settings, clock, "b@example.com")
    unsubscribe_by_email(sub_session, clock, email="a@example.com", source="web")
    out = io.StringIO()
    write_export(iter_export(sub_session, list_slug="weekly"), out, fmt="jsonl")
    [line] = out.getvalue().splitlines()
    row = json.loads(line)
    assert (row["email"], row["name"], row["status"]) == ("a@example.com", "-dash", "unsubscribed")
    assert row["unsubscribed_at"] == clock.now().isoformat()


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValidationError, match="csv or jsonl"):
        write_export(iter([]), io.StringIO(), fmt="xlsx")
