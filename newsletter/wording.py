"""Small English wording helpers shared by the messages people read (CLI, reasons, reports)."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """`1 article`, `2 articles`: a count with its noun in the right number."""
    word = noun if count == 1 else (plural_form or noun + "s")
    return f"{count} {word}"
