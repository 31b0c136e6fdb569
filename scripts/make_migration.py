"""Generate an Alembic migration from the difference between the models and the schema.

Usage: python scripts/make_migration.py "what changed" REV_ID
(Compares against a scratch SQLite database upgraded to the current head.)
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command

from newsletter.db.migrate import MIGRATIONS_DIR, alembic_config, upgrade
from newsletter.db.session import make_engine


def main() -> None:
    message, rev_id = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        upgrade(engine)
        command.revision(alembic_config(engine), message=message, autogenerate=True, rev_id=rev_id)
    for path in (MIGRATIONS_DIR / "versions").glob(f"{rev_id}_*.py"):
        text = path.read_text(encoding="utf-8").replace(
            "astext_type=Text()", "astext_type=sa.Text()"
        )
        text = re.sub(r"UTCDateTime\(timezone=True\)", "UTCDateTime()", text)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {Path(path).name}")


if __name__ == "__main__":
    main()
