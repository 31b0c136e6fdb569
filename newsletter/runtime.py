"""The running application's parts, built once from Settings by an entry point.

The CLI, the web app, the scheduler and the workers each build one Runtime; the layers below
take its parts (a session factory, settings, a clock) as arguments and never reach for globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import SYSTEM_CLOCK, Clock
from newsletter.config import Settings
from newsletter.db.migrate import is_up_to_date, upgrade
from newsletter.db.session import check_connection, make_engine, session_factory
from newsletter.errors import DatabaseError


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    clock: Clock = field(default=SYSTEM_CLOCK)

    @classmethod
    def open(
        cls, settings: Settings, *, migrate: bool = False, clock: Clock = SYSTEM_CLOCK
    ) -> Runtime:
        """Connect (one-line error if unreachable); with `migrate`, create/upgrade the schema.

        Without `migrate` nothing is created: a missing SQLite file is "no database".
        """
        engine = make_engine(settings.database_url, create=migrate)
        check_connection(engine)
        if migrate:
            upgrade(engine)
        elif not is_up_to_date(engine):
            raise DatabaseError(
                "the database schema is missing or out of date: run `newsletter init`"
            )
        return cls(settings=settings, engine=engine, sessions=session_factory(engine), clock=clock)

    def close(self) -> None:
        self.engine.dispose()
