"""Subject-line tests: a random sample gets the subjects, the winner by reader clicks or opens
goes to everyone else, nobody gets two. Planning and sending on SQLite and PostgreSQL; the
10,000-subscriber test through the outbox provider's files."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from newsletter.accounts.actors import Actor, cli_actor
from newsletter.accounts.roles import Role
from newsletter.cli.context import AppContext
from newsletter.cli.main import cli
from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.migrate import upgrade
from newsletter.db.models import (
    AuditEntry,
    ClickEvent,
    Delivery,
    Issue,
    IssueVariant,
    MailingList,
    OpenEvent,
    SubjectTest,
    Subscriber,
)
from newsletter.db.session import make_engine, session_factory, transaction
from newsletter.delivery import operations
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.delivery.status import send_status
from newsletter.delivery.subject_tests import decide_test, start_test
from newsletter.engagement.subject_tests import (
    ArmCount,
    choose_winner,
    describe_test,
    parse_wait,
    plan_test,
    status_line,
)
from newsletter.errors import PermissionDeniedError, StateError, ValidationError
from newsletter.issues.assembly import build_issue
from newsletter.pipeline import decide_due_tests
from newsletter.providers.base import Batch
from newsletter.providers.outbox import OutboxProvider
from newsletter.runtime import Runtime
from newsletter.testing.memory_provider import MemoryProvider
from newsletter.types import SLOT_TRACKING_TOKEN, VARIANTS
from tests.fixtures.delivery import T0, add_subscribers, seed_send

FAST = SendConfig(
    batch_size=50, concurrency=2, backoff_base_s=0.01, backoff_max_s=0.02, poll_s=0.01
)
NOW = datetime(2026, 6, 12, 21, 0, tzinfo=UTC)  # 06:00 in Tokyo
JA = ("今日のAI: 新モデル", "AIニュース 5本")
EN = ("Today in AI: a new model", "Five AI stories")


# --- helpers --------------------------------------------------------------------------------


def _seed(sessions: sessionmaker[Session], subscribers: int, *, clicks: bool = True) -> int:
    """A built issue for `subscribers` readers of a list that tracks clicks (both forms)."""
    seeded = seed_send(sessions, subscribers)
    with sessions.begin() as session:
        lists = update(MailingList).where(MailingList.id == seeded.list_id)
        session.execute(lists.values(click_tracking=clicks))
        for variant in VARIANTS:
            session.add(
                IssueVariant(
                    issue_id=seeded.issue_id, variant=variant, tracked=True,
                    subject=f"AI日報 {variant} tracked", preheader="today",
                    html=f"<a href='https://n.example/c/{SLOT_TRACKING_TOKEN}/1'>{variant}</a>",
                    text=f"https://n.example/c/{SLOT_TRACKING_TOKEN}/1", trimmed=[],
                    rendered_at=T0 + timedelta(minutes=1),
                )
            )  # fmt: skip
    return seeded.issue_id


def _plan(**overrides: object) -> object:
    options: dict[str, object] = {
        "ja": JA, "en": EN, "sample": "20%", "wait": "2h", "metric": "clicks",
    }  # fmt: skip
    options.update(overrides)
    return plan_test(**options)  # type: ignore[arg-type]


def _start(sessions: sessionmaker[Session], settings: Settings, clock: FixedClock,
           issue_id: int, **overrides: object):  # type: ignore[no-untyped-def]  # fmt: skip
    with transaction(sessions) as session:
        return start_test(
            session,
            settings,
            clock,
            cli_actor(),
            issue_id,
            _plan(**overrides),  # type: ignore[arg-type]
            batch_size=FAST.batch_size,
        )


def _send(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, issue_id: int
) -> list[Batch]:
    batches: list[Batch] = []
    provider = MemoryProvider(rule=lambda b: batches.append(b) or None)
    send_issue(sessions, settings, provider, issue_id, clock, worker_id="t", config=FAST)
    assert provider.duplicates == 0
    return batches


def _decide(sessions: sessionmaker[Session], settings: Settings, clock: FixedClock,
            issue_id: int, *, early: bool = True):  # type: ignore[no-untyped-def]  # fmt: skip
    with transaction(sessions) as session:
        return decide_test(
            session, settings, clock, cli_actor(), issue_id, early=early,
            batch_size=FAST.batch_size,
        )  # fmt: skip


def _click(sessions: sessionmaker[Session], issue_id: int, arm: int, readers: int, *,
           machine: bool = False, clicks_each: int = 1) -> None:  # fmt: skip
    """`readers` recipients of `arm` click (each `clicks_each` times)."""
    with transaction(sessions) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.subscriber_id, Delivery.variant)
            .where(Delivery.issue_id == issue_id, Delivery.subject_arm == arm)
            .order_by(Delivery.id)
            .limit(readers)
        ).all()
        assert len(rows) == readers
        session.add_all(
            ClickEvent(
                issue_id=issue_id, subscriber_id=r.subscriber_id, delivery_id=r.id, link_no=1,
                article_id=None, kind="article", variant=r.variant, position=1, at=NOW,
                machine=machine, reason="head" if machine else None,
            )
            for r in rows
            for _ in range(clicks_each)
        )  # fmt: skip


def _arms(sessions: sessionmaker[Session], issue_id: int) -> dict[int | None, int]:
    with sessions() as session:
        return dict(
            session.execute(
                select(Delivery.subject_arm, func.count())
                .where(Delivery.issue_id == issue_id)
                .group_by(Delivery.subject_arm)
            ).all()
        )


def _test_row(sessions: sessionmaker[Session], issue_id: int) -> SubjectTest:
    with sessions() as session:
        test = session.scalar(select(SubjectTest).where(SubjectTest.issue_id == issue_id))
        assert test is not None
        session.expunge(test)
        return test


@pytest.fixture
def now() -> FixedClock:
    return FixedClock(NOW)


# --- the options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ja": JA[:1], "en": ()}, "--subject-ja: expected 2 to 5 subjects (one per arm), got 1"),
        ({"en": EN + ("Third",)}, "--subject-en: expected as many subjects as --subject-ja (2"),
        ({"ja": (), "en": ()}, "expected 2 to 5 subjects in at least one language"),
        ({"ja": ("一行目\n二行目", JA[1])}, "--subject-ja #1: expected one line"),
        ({"en": (EN[0], "bell\x07")}, "--subject-en #2: expected one line"),
        ({"en": (EN[0], " ")}, "--subject-en #2: expected a subject line, got an empty one"),
        ({"ja": (JA[0], "あ" * 101)}, "--subject-ja #2: 202 columns, expected at most 200"),
        ({"ja": (JA[0], JA[0]), "en": (EN[0], EN[0])}, "two arms have the same subjects"),
        ({"sample": "60%"}, "--sample: expected a percentage of the audience from 1% to 50%"),
        ({"sample": "0"}, "--sample: expected a percentage"),
        ({"wait": "5m"}, "--wait: expected 0 or a duration from 10m to 24h"),
        ({"wait": "2 weeks"}, "--wait: expected 0 or a duration from 10m to 24h"),
        ({"metric": "replies"}, "--metric: expected clicks or opens, got 'replies'"),
    ],
)
def test_a_bad_option_is_refused_naming_the_option_and_what_was_expected(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _plan(**overrides)
    assert message in str(caught.value)


def test_waits_are_minutes_hours_or_days_and_zero_means_by_hand() -> None:
    assert [parse_wait(w) for w in ("30m", "2h", "1d", "45", "0")] == [1800, 7200, 86400, 2700, 0]


def test_the_highest_reader_rate_wins_and_a_tie_goes_to_the_first_subject() -> None:
    assert choose_winner([ArmCount(100, 100, 5), ArmCount(100, 50, 5)]) == 1  # 5% < 10%
    assert choose_winner([ArmCount(100, 100, 7), ArmCount(100, 100, 7)]) == 0
    assert choose_winner([ArmCount(10, 0, 0), ArmCount(10, 10, 0), ArmCount(10, 10, 1)]) == 2


# --- starting -------------------------------------------------------------------------------


def test_the_sample_is_the_percentage_of_the_audience_split_evenly_at_random(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 101)
    report = _start(sessions, settings, now, issue_id, sample="50%", ja=JA + ("第三案",), en=())
    assert report.eligible == 101 and report.sample == 50
    assert sorted(report.arms) == [16, 17, 17]
    assert _arms(sessions, issue_id) == {0: report.arms[0], 1: report.arms[1], 2: report.arms[2]}
    with sessions() as session:
        chosen = set(session.scalars(select(Delivery.subscriber_id)))
        lowest = set(session.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(50)))
        issue = session.get_one(Issue, issue_id)
        assert issue.status == "sending"
    assert chosen != lowest  # drawn at random, not the first 50


def test_each_arm_sends_its_own_subject_in_every_variant_as_the_renderer_builds_it(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 60)
    _start(sessions, settings, now, issue_id, sample="50%")
    batches = _send(sessions, settings, now, issue_id)
    variants = _test_row(sessions, issue_id).subjects["variants"]
    assert variants["ja"] == list(JA) and variants["en"] == list(EN)
    assert variants["both"][0] == f"{JA[0]} / {EN[0]}"
    assert variants["both-en"][1] == f"{EN[1]} / {JA[1]}"
    with sessions() as session:
        arm_of = dict(session.execute(select(Delivery.id, Delivery.subject_arm)).all())
    sent = 0
    for batch in batches:
        for recipient in batch.recipients:
            arm = arm_of[recipient.delivery_id]
            assert batch.message.subject == variants[batch.message.variant][arm]
            sent += 1
    assert sent == 30


def test_a_language_not_given_keeps_the_issues_own_subject_in_every_arm(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 30)
    with transaction(sessions) as session:
        session.get_one(Issue, issue_id).subject_en = "The editor's English subject"
    _start(sessions, settings, now, issue_id, en=())
    variants = _test_row(sessions, issue_id).subjects["variants"]
    assert variants["en"] == ["The editor's English subject"] * 2
    assert variants["ja"] == list(JA)


def test_clicks_need_the_lists_click_tracking(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 10, clicks=False)
    with pytest.raises(StateError) as caught:
        _start(sessions, settings, now, issue_id)
    assert "--metric clicks: list 'daily' does not record clicks (click_tracking is off)" in str(
        caught.value
    )
    assert "`newsletter lists update daily --click-tracking on`" in str(caught.value)
    with pytest.raises(StateError, match="open_tracking is off.*--open-tracking on"):
        _start(sessions, settings, now, issue_id, metric="opens")
    assert _arms(sessions, issue_id) == {}


def test_only_a_built_issue_can_start_a_test(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 10)
    with transaction(sessions) as session:
        operations.start_send(session, settings, now, cli_actor(), issue_id)
    with pytest.raises(StateError, match="is sending: a subject-line test starts only on a built"):
        _start(sessions, settings, now, issue_id)


def test_with_approval_required_an_unapproved_issue_cannot_start_a_test(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 10)
    strict = replace(settings, require_approval=True)
    with pytest.raises(StateError, match="not approved .NEWSLETTER_REQUIRE_APPROVAL."):
        _start(sessions, strict, now, issue_id)


def test_starting_a_test_needs_the_send_permission_and_is_audited(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 20)
    with pytest.raises(PermissionDeniedError), transaction(sessions) as session:
        start_test(session, settings, now, Actor("ed@example.jp", Role.EDITOR), issue_id, _plan())  # type: ignore[arg-type]
    _start(sessions, settings, now, issue_id)
    with sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.issue_id == issue_id))
        assert entry is not None and entry.action == "issue.subject_test.start"
        assert entry.after["arms"] == [2, 2] and entry.after["metric"] == "clicks"


def test_too_small_an_audience_for_the_subjects_is_refused(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 6)
    with pytest.raises(StateError, match="10% of 6 eligible subscribers is 0, fewer than the 2"):
        _start(sessions, settings, now, issue_id, sample="10%")


# --- waiting --------------------------------------------------------------------------------


def test_after_its_sample_the_issue_waits_for_the_decision_instead_of_ending(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 50)
    _start(sessions, settings, now, issue_id)
    now.advance(minutes=3)
    _send(sessions, settings, now, issue_id)
    with sessions() as session:
        status = send_status(session, issue_id)
    assert status.issue_status == "sending"
    assert status.recipients["accepted"] == 10 and status.recipients["queued"] == 0
    assert status.subject_test is not None
    assert status.subject_test["decide_at"] == (NOW + timedelta(minutes=3, hours=2)).isoformat()
    assert status_line(status.subject_test, settings.timezone) == (
        "subject-line test: waiting until 08:03 JST (metric clicks)"
    )


def test_sending_again_during_the_wait_mails_nobody_else(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 50)
    _start(sessions, settings, now, issue_id)
    _send(sessions, settings, now, issue_id)
    assert _send(sessions, settings, now, issue_id) == []
    assert _arms(sessions, issue_id) == {0: 5, 1: 5}


def test_deciding_while_the_sample_is_still_out_is_refused(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 50)
    _start(sessions, settings, now, issue_id)
    with pytest.raises(StateError, match="still sending its sample"):
        _decide(sessions, settings, now, issue_id)


# --- deciding -------------------------------------------------------------------------------


def test_machine_clicks_and_prefetched_opens_do_not_count(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 100)
    with transaction(sessions) as session:
        session.execute(update(MailingList).values(open_tracking=True))
    _start(sessions, settings, now, issue_id, metric="opens")
    _send(sessions, settings, now, issue_id)
    _click(sessions, issue_id, 0, 10, machine=True)  # a link scanner: clicks are not opens
    with transaction(sessions) as session:
        deliveries = session.execute(
            select(Delivery.id, Delivery.subject_arm, Delivery.variant).order_by(Delivery.id)
        ).all()
        prefetched = [d for d in deliveries if d.subject_arm == 0]  # Apple's proxy, all of A
        read = [d for d in deliveries if d.subject_arm == 1][:1]  # one real reader of B
        for d, source in [(d, "apple_mpp") for d in prefetched] + [(d, "reader") for d in read]:
            session.add(OpenEvent(issue_id=issue_id, delivery_id=d.id, variant=d.variant,
                                  at=NOW, source=source))  # fmt: skip
    report = _decide(sessions, settings, now, issue_id)
    results = _test_row(sessions, issue_id).results
    assert results is not None
    assert [a["opens"] for a in results["arms"]] == [0, 1]
    assert report.winner_arm == 1


def test_the_winner_is_planned_for_everyone_else_and_the_decision_recorded(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 100)
    _start(sessions, settings, now, issue_id)
    _send(sessions, settings, now, issue_id)
    _click(sessions, issue_id, 0, 2)
    _click(sessions, issue_id, 0, 8, machine=True)
    _click(sessions, issue_id, 1, 4, clicks_each=3)
    report = _decide(sessions, settings, now, issue_id)
    assert (report.winner_arm, report.added) == (1, 80)
    assert _arms(sessions, issue_id) == {0: 10, 1: 90}
    test = _test_row(sessions, issue_id)
    assert (test.status, test.winner_arm, test.decided_at) == ("decided", 1, NOW)
    assert test.results is not None
    assert [(a["accepted"], a["clicks"], a["rate"]) for a in test.results["arms"]] == [
        (10, 2, 0.2), (10, 4, 0.4),
    ]  # fmt: skip
    with sessions() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["issue.subject_test.start", "issue.subject_test.decide"]


def test_the_scheduler_decides_when_the_wait_is_over_and_sends_the_winner(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 40)
    _start(sessions, settings, now, issue_id, wait="30m")
    _send(sessions, settings, now, issue_id)
    _click(sessions, issue_id, 1, 1)
    runtime = Runtime(settings=settings, engine=engine, sessions=sessions, clock=now)
    now.advance(minutes=29)
    assert decide_due_tests(runtime) == []
    assert _test_row(sessions, issue_id).status == "waiting"
    now.advance(minutes=1)
    (report,) = decide_due_tests(runtime)
    assert report.outcome == "sent"
    assert _test_row(sessions, issue_id).status == "done"
    assert _arms(sessions, issue_id) == {0: 4, 1: 36}
    with sessions() as session:
        decided = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "issue.subject_test.decide")
        )
        assert decided is not None and decided.actor == "scheduler"


def test_a_subscriber_who_joins_during_the_wait_gets_the_winner(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 30)
    _start(sessions, settings, now, issue_id)
    _send(sessions, settings, now, issue_id)
    with transaction(sessions) as session:
        list_id = session.get_one(Issue, issue_id).list_id
        (late,) = add_subscribers(session, list_id, 1000, 1)
    _click(sessions, issue_id, 1, 1)
    _decide(sessions, settings, now, issue_id)
    batches = _send(sessions, settings, now, issue_id)
    subjects = _test_row(sessions, issue_id).subjects["variants"]
    got = {r.email: b.message.subject for b in batches for r in b.recipients}
    assert len(got) == 25  # the 24 outside the sample and the newcomer
    assert got[late] == subjects["en"][1]  # an English reader: arm B in English


def test_a_subscriber_who_joins_while_the_winner_is_sending_gets_the_winner(
    sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 30)
    _start(sessions, settings, now, issue_id)
    _send(sessions, settings, now, issue_id)
    _click(sessions, issue_id, 1, 1)
    _decide(sessions, settings, now, issue_id)  # planned, not sent yet
    with transaction(sessions) as session:
        list_id = session.get_one(Issue, issue_id).list_id
        (late,) = add_subscribers(session, list_id, 1000, 1)
    batches = _send(sessions, settings, now, issue_id)  # `issue send` plans newcomers first
    got = {r.email: b.message.subject for b in batches for r in b.recipients}
    assert got[late] == _test_row(sessions, issue_id).subjects["variants"]["en"][1]


def test_cancelling_the_issue_cancels_its_test(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 50)
    _start(sessions, settings, now, issue_id, wait="10m")
    _send(sessions, settings, now, issue_id)
    with transaction(sessions) as session:
        operations.cancel(session, now, cli_actor(), issue_id)
    assert _test_row(sessions, issue_id).status == "cancelled"
    now.advance(hours=1)
    runtime = Runtime(settings=settings, engine=engine, sessions=sessions, clock=now)
    assert decide_due_tests(runtime) == []
    with pytest.raises(StateError, match="is cancelled: there is nothing left to decide"):
        _decide(sessions, settings, now, issue_id)
    assert _arms(sessions, issue_id) == {0: 5, 1: 5}


# --- the command line -----------------------------------------------------------------------


def _app(engine: Engine, sessions: sessionmaker[Session], settings: Settings,
         clock: FixedClock) -> AppContext:  # fmt: skip
    app = AppContext()
    app._settings = settings
    app._runtime = Runtime(settings=settings, engine=engine, sessions=sessions, clock=clock)
    return app


def test_the_command_line_runs_a_test_and_status_json_shows_its_results(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 40)
    app = _app(engine, sessions, settings, now)
    runner = CliRunner()
    args = ["issue", "ab-test", str(issue_id), "--subject-ja", JA[0], "--subject-ja", JA[1],
            "--subject-en", EN[0], "--subject-en", EN[1], "--sample", "50%",
            "--wait", "0"]  # fmt: skip
    started = runner.invoke(cli, args, obj=app)
    assert started.exit_code == 0, started.output
    assert "20 of 40 subscribers (50%) in 2 arms (A 10 / B 10)" in started.output
    assert "waiting for an operator" in started.output
    _click(sessions, issue_id, 0, 3)
    decided = runner.invoke(cli, ["issue", "ab-test", str(issue_id), "--decide-now"], obj=app)
    assert decided.exit_code == 0, decided.output
    assert "subject A won; 20 more recipients get it" in decided.output
    shown = runner.invoke(cli, ["issue", "ab-test", str(issue_id), "--status", "--json"], obj=app)
    data = json.loads(shown.output)
    assert (data["status"], data["winner_arm"], data["winner_label"]) == ("done", 0, "A")
    assert [(a["sent"], a["accepted"], a["clicks"]) for a in data["arms"]] == [
        (10, 10, 3), (10, 10, 0),
    ]  # fmt: skip  # the sample's results, recorded when it was decided
    assert data["arms"][1]["subjects"] == {"ja": JA[1], "en": EN[1]}


def test_a_bad_option_on_the_command_line_is_one_line_naming_it(
    engine: Engine, sessions: sessionmaker[Session], settings: Settings, now: FixedClock
) -> None:
    issue_id = _seed(sessions, 10)
    app = _app(engine, sessions, settings, now)
    result = CliRunner().invoke(
        cli, ["issue", "ab-test", str(issue_id), "--subject-ja", "A", "--sample", "70%"], obj=app
    )
    assert result.exit_code == 65
    assert result.output.strip() == (
        "error: --subject-ja: expected 2 to 5 subjects (one per arm), got 1"
    )


# --- 10,000 subscribers through the outbox ----------------------------------------------------


_SUBJECT = re.compile(rb"^Subject: (.*?)\r\n(?! )", re.MULTILINE | re.DOTALL)


def _outbox_subjects(folder: Path, known: dict[int, str] | None = None) -> dict[int, str]:
    """delivery id -> the decoded Subject of its .eml file (unfolded, RFC 2047 decoded);
    files already `known` are counted, not read again."""
    found: dict[int, str] = {}
    for path in folder.glob("*.eml"):
        delivery_id = int(path.name.split("-", 1)[0])
        assert delivery_id not in found
        if known and delivery_id in known:
            found[delivery_id] = known[delivery_id]
            continue
        with path.open("rb") as handle:
            match = _SUBJECT.search(handle.read(4096))
        assert match is not None, path.name
        raw = match.group(1).replace(b"\r\n", b"").decode("ascii")
        found[delivery_id] = str(make_header(decode_header(raw)))
    return found


SqliteSend = tuple[sessionmaker[Session], Settings]


@pytest.fixture
def sqlite_only(tmp_path: Path, sqlite_url: str) -> Iterator[SqliteSend]:
    """10,000 outbox files take ~0.6 ms of CPU each whatever the database; PostgreSQL adds
    only time (its planning is covered by the tests above), so this one runs on SQLite."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    settings = load_settings(
        {}, database_url=sqlite_url, outbox_dir=tmp_path / "outbox", var_dir=tmp_path / "var",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url="https://news.example.com",
    )  # fmt: skip
    yield session_factory(engine), settings
    engine.dispose()


def test_an_ab_test_on_10000_subscribers_mails_everyone_once_and_the_rest_get_the_winner(
    sqlite_only: SqliteSend, now: FixedClock
) -> None:
    sessions, settings = sqlite_only
    issue_id = _seed(sessions, 10_000)
    provider = OutboxProvider(settings.outbox_dir)
    config = SendConfig(batch_size=1000, concurrency=2, poll_s=0.01)
    report = _start(sessions, settings, now, issue_id, sample="20%")
    send_issue(sessions, settings, provider, issue_id, now, worker_id="t", config=config)
    folder = settings.outbox_dir / f"issue-{issue_id}"
    sample = _outbox_subjects(folder)
    assert len(sample) == report.sample == 2000
    assert abs(report.arms[0] - report.arms[1]) <= 1
    variants = _test_row(sessions, issue_id).subjects["variants"]
    with sessions() as session:
        form = {
            d.id: (d.subscriber_id, d.variant, d.subject_arm)
            for d in session.execute(select(Delivery.id, Delivery.subscriber_id,
                                            Delivery.variant, Delivery.subject_arm))
        }  # fmt: skip
    assert all(sample[d] == variants[form[d][1]][form[d][2]] for d in sample)
    _click(sessions, issue_id, 0, 30)
    _click(sessions, issue_id, 1, 60)  # B: 6% of its readers clicked, A: 3%
    now.advance(hours=2, minutes=1)
    decided = _decide(sessions, settings, now, issue_id, early=False)
    assert (decided.winner_arm, decided.added) == (1, 8000)
    send_issue(sessions, settings, provider, issue_id, now, worker_id="t", config=config)
    everyone = _outbox_subjects(folder, sample)
    with sessions() as session:
        form = {
            d.id: (d.subscriber_id, d.variant, d.subject_arm)
            for d in session.execute(select(Delivery.id, Delivery.subscriber_id,
                                            Delivery.variant, Delivery.subject_arm))
        }  # fmt: skip
        issue = session.get_one(Issue, issue_id)
        assert issue.status == "sent"
        test = session.scalar(select(SubjectTest))
        assert test is not None
        shown = describe_test(session, test)
    assert len(everyone) == 10_000
    assert len({form[d][0] for d in everyone}) == 10_000  # every subscriber exactly once
    rest = set(everyone) - set(sample)
    assert all(everyone[d] == variants[form[d][1]][1] for d in rest)
    assert (shown["status"], shown["winner_arm"]) == ("done", 1)
    assert [a["clicks"] for a in shown["arms"]] == [30, 60]


# --- the desk -------------------------------------------------------------------------------


def test_the_desks_issue_page_shows_the_test_and_each_subjects_results(
    web_client: TestClient, web_runtime: Runtime, clock: FixedClock
) -> None:
    from tests.desk_support import make_user, sign_in
    from tests.fixtures.scheduler import seed_articles
    from tests.fixtures.web import add_list

    with transaction(web_runtime.sessions) as session:
        add_list(session, clock)
    seed_articles(web_runtime.sessions, [clock.now() - timedelta(hours=h) for h in (1, 2, 3)])
    with transaction(web_runtime.sessions) as session:
        built = build_issue(session, web_runtime.settings, clock, list_slug="daily")
        assert built.issue is not None
        issue_id, list_id = built.issue.id, built.issue.list_id
        session.execute(update(MailingList).values(click_tracking=True))
        add_subscribers(session, list_id, 0, 40)
    _start(web_runtime.sessions, web_runtime.settings, clock, issue_id, sample="50%")
    _click(web_runtime.sessions, issue_id, 1, 2)
    make_user(web_runtime, "viewer@example.com", "viewer")
    sign_in(web_client, "viewer@example.com")
    page = web_client.get("/desk/lists/daily/2026-06-13?hl=en").text
    assert 'Subject-line test: <span class="state">sending the sample</span>' in page
    assert "A random 50% of the audience (20 subscribers)" in page
    assert f'<span lang="ja">{JA[1]}</span><br><span lang="en">{EN[1]}</span>' in page
    assert "<td>0 / 10</td><td>2</td>" in page  # B: nobody accepted yet, 2 reader clicks
    japanese = web_client.get("/desk/lists/daily/2026-06-13?hl=ja").text
    assert '件名テスト: <span class="state">サンプルに配信中</span>' in japanese


# --- the HTTP API ---------------------------------------------------------------------------


def test_the_api_starts_a_test_once_per_idempotency_key_shows_it_and_decides_it(
    web_runtime: Runtime, clock: FixedClock
) -> None:
    from newsletter.accounts import tokens
    from newsletter.web import create_app

    issue_id = _seed(web_runtime.sessions, 30)
    with transaction(web_runtime.sessions) as session:
        secret = tokens.create_token(
            session, clock, cli_actor(), name="ab-script", role="admin"
        ).secret
    auth = {"Authorization": f"Bearer {secret}"}
    body = {"subjects_ja": list(JA), "subjects_en": list(EN), "sample": "20%", "wait": "0"}
    path = f"/api/v1/issues/{issue_id}/subject-test"
    with TestClient(create_app(web_runtime), base_url="https://news.example.com") as client:
        bad = client.post(path, json={**body, "subjects_en": [EN[0]]}, headers=auth)
        assert bad.status_code == 422 and "subjects_en: expected 2 to 5" in bad.json()["detail"]
        key = {**auth, "Idempotency-Key": "ab-0613"}
        first = client.post(path, json=body, headers=key)
        assert first.status_code == 202, first.text
        again = client.post(path, json=body, headers=key)
        assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
        deadline = time.monotonic() + 20  # the server sends the sample in the background
        while client.get(path, headers=auth).json()["status"] != "waiting":
            assert time.monotonic() < deadline, "the sample was not sent"
            time.sleep(0.05)
        _click(web_runtime.sessions, issue_id, 1, 1)
        decided = client.post(path + "/decide", headers=auth)
        assert decided.status_code == 200, decided.text
        assert decided.json()["test"]["winner_label"] == "B"
        assert client.post(path + "/decide", headers=auth).status_code == 409
        while (
            client.get(f"/api/v1/issues/{issue_id}/status", headers=auth).json()["issue_status"]
            != "sent"
        ):  # the winner goes out in the background too
            assert time.monotonic() < deadline + 20, "the winner was not sent"
            time.sleep(0.05)
    assert _arms(web_runtime.sessions, issue_id) == {0: 3, 1: 27}
