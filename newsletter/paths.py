"""Where the project's data files live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_dir() -> Path:
    """`templates/` of the checkout (editable install) or the copy inside the wheel."""
    for candidate in (PACKAGE_DIR / "_templates", PACKAGE_DIR.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the templates folder is missing from this installation")


SAMPLES_DIR = PACKAGE_DIR / "samples"
