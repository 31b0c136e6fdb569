"""Two requests acting on the same address at once (found by Schemathesis against the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.db.models import Suppression
from newsletter.db.session import transaction
from subscribers.suppression import suppress


def test_a_suppression_raced_by_another_request_is_one_suppression(
    sessions: sessionmaker[Session], clock: FixedClock
) -> None:
    """The second request checked before the first committed, then inserts: it must find
    the address suppressed (False), not fail on the unique hash."""
    with transaction(sessions) as session:
        assert suppress(session, clock, email="race@example.jp", reason="manual", source="api")
    with transaction(sessions) as session:
        real_scalar = session.scalar
        calls = {"n": 0}

        def stale_first_check(statement: Any, *args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 2:  # the existence check, as it was before the other commit
                return None
            return real_scalar(statement, *args, **kwargs)

        session.scalar = stale_first_check  # type: ignore[method-assign]
        added = suppress(session, clock, email="race@example.jp", reason="manual", source="api")
    assert added is False
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
