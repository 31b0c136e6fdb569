"""CSV rows judged one at a time: a line in the wrong encoding, or a control character in a
cell, rejects that row with its line number and never costs the rows around it.

Real files: a CP932 file from Japanese Excel with a UTF-8 row pasted in, a UTF-8 file with a
CP932 row; cells with NUL (PostgreSQL cannot store it at all) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.db.models import Subscriber
from subscribers.csv_source import detect_encoding
from subscribers.importing import import_csv


@pytest.fixture
def engine(subscribers_engine: Engine) -> Engine:
    """This module's database: migrated once, emptied per test (see tests/fixtures)."""
    return subscribers_engine


HEADER = "メールアドレス,名前,会社\r\n"


def _report(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def _stored(sessions: sessionmaker[Session]) -> dict[str, tuple[str | None, dict]]:
    with sessions() as session:
        rows = session.execute(select(Subscriber.email, Subscriber.name, Subscriber.attributes))
        return {email: (name, attributes) for email, name, attributes in rows}


def test_a_utf8_row_inside_a_cp932_file_is_rejected_not_stored_as_mojibake(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = tmp_path / "members.csv"
    pasted = "misaki@example.jp,田中 美咲,例示株式会社\r\n".encode()  # from a UTF-8 file
    assert pasted.decode("cp932") == "misaki@example.jp,逕ｰ荳ｭ 鄒主調,萓狗､ｺ譬ｪ蠑丈ｼ夂､ｾ\r\n"
    source.write_bytes(
        (HEADER + "taro@example.jp,山田 太郎,例示商事\r\n").encode("cp932")
        + pasted
        + "jiro@example.jp,鈴木 次郎,例示物産\r\n".encode("cp932")
    )
    report = tmp_path / "report.csv"
    summary = import_csv(sessions, clock, source, report_path=report)
    assert summary.encoding == "cp932"
    assert (summary.imported, summary.rejected) == (2, 1)
    assert _report(report) == [
        {
            "line": "3",
            "email": "misaki@example.jp",
            "outcome": "rejected",
            "reason": "line 3 is UTF-8 inside a file read as cp932 (mixed encodings); "
            "save the file in one encoding",
        }
    ]
    assert _stored(sessions) == {
        "taro@example.jp": ("山田 太郎", {"会社": "例示商事"}),
        "jiro@example.jp": ("鈴木 次郎", {"会社": "例示物産"}),
    }


def test_a_cp932_row_inside_a_utf8_file_is_rejected_with_its_line(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = tmp_path / "members.csv"
    source.write_bytes(
        (HEADER + "a@example.jp,青木,一\r\nb@example.jp,馬場,二\r\n").encode()
        + "c@example.jp,千葉,三\r\n".encode("cp932")
        + "d@example.jp,土井,四\r\n".encode()
    )
    assert detect_encoding(source) == "utf-8"
    summary = import_csv(sessions, clock, source)
    assert (summary.imported, summary.rejected) == (3, 1)
    [problem] = summary.problems
    assert problem["line"] == 4
    assert problem["reason"].startswith("line 4 is not valid utf-8 text (byte 14 of the line)")
    assert set(_stored(sessions)) == {"a@example.jp", "b@example.jp", "d@example.jp"}


def test_an_undecodable_line_inside_a_quoted_cell_rejects_only_its_record(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = tmp_path / "members.csv"
    source.write_bytes(
        b'email,name,note\na@example.com,A,"two\nlines \xff here"\nb@example.com,B,fine\n'
    )
    summary = import_csv(sessions, clock, source, encoding="utf-8")
    assert (summary.imported, summary.rejected) == (1, 1)
    assert summary.problems[0]["line"] == 2
    assert summary.problems[0]["reason"].startswith("line 3 is not valid utf-8 text")
    assert set(_stored(sessions)) == {"b@example.com"}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("nul@example.com,名前\x00,x", "name: control character U+0000 at character 3"),
        ('tab@example.com,"a\tb",x', "name: control character U+0009 at character 2"),
        ("del@example.com,ok,x\x7f", "会社: control character U+007F at character 2"),
        ("esc@example.com,ok,\x1b[2J", "会社: control character U+001B at character 1"),
        ("n\x00ul@example.com,ok,x", "email: The email address contains invalid characters"),
    ],
)
def test_a_control_character_rejects_its_row_and_keeps_the_others(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path, row: str, reason: str
) -> None:
    source = tmp_path / "members.csv"
    source.write_text(
        HEADER + "before@example.com,前,a\r\n" + row + "\r\n" + 'after@example.com,後,"一\n二"\r\n',
        encoding="utf-8",
        newline="",
    )
    summary = import_csv(sessions, clock, source)
    assert (summary.imported, summary.rejected) == (2, 1)
    [problem] = summary.problems
    assert problem["line"] == 3
    assert problem["reason"].startswith(reason)
    assert "\x00" not in problem["email"]
    assert _stored(sessions) == {
        "before@example.com": ("前", {"会社": "a"}),
        "after@example.com": ("後", {"会社": "一\n二"}),  # line breaks are fine in other columns
    }


def test_a_header_with_a_control_character_is_refused_whole(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    source = tmp_path / "members.csv"
    source.write_text("email,na\x00me\na@example.com,A\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"line 1: column 2: control character U\+0000"):
        import_csv(sessions, clock, source)


def test_a_bad_line_deep_in_a_large_file_is_found_by_its_number(
    sessions: sessionmaker[Session], clock: FixedClock, tmp_path: Path
) -> None:
    """Past the first read block (1 MB), and with old-Mac CR line ends at the end."""
    rows = [f"user{n:05d}@example.com,利用者{n},{'x' * 80}\n".encode() for n in range(12_000)]
    rows[10_000] = "bad@example.com,千葉,三\n".encode("cp932")
    tail = b"mac1@example.com,M1,a\rmac2@example.com,M2,b\r"
    source = tmp_path / "big.csv"
    source.write_bytes(b"email,name,note\n" + b"".join(rows) + tail)
    assert source.stat().st_size > 1024 * 1024
    summary = import_csv(sessions, clock, source)
    assert summary.encoding == "utf-8"
    assert (summary.imported, summary.rejected) == (12_001, 1)
    [problem] = summary.problems
    assert (problem["line"], problem["email"]) == (10_002, "bad@example.com")
    assert problem["reason"].startswith("line 10002 is not valid utf-8 text")
    assert {"mac1@example.com", "mac2@example.com"} <= set(_stored(sessions))
