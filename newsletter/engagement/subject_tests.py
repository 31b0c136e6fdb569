"""Subject-line tests: what a test is, which subject each arm sends, and who won.

A test sends a random sample of the audience one of two or more subjects (the arms), waits,
then sends everyone else the subject whose readers clicked (or opened) most. This module holds
the rules and the test's row; the sending side (the sample's deliveries, the rest sent with the
winner) is `newsletter.delivery.subject_tests`, because planning a send belongs to the sending
core, a layer above this one. See docs/engagement.md ("Subject-line tests").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, false, func, select, update
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db.models import (
    ClickEvent,
    Delivery,
    Issue,
    MailingList,
    OpenEvent,
    SendBatch,
    SubjectTest,
    delivery_status,
)
from newsletter.engagement import classify
from newsletter.errors import NotFoundError, StateError, ValidationError
from newsletter.render.renderer import SUBJECT_MAX, subject_for
from newsletter.render.view import IssueView
from newsletter.render.width import display_width
from newsletter.types import SLOTS, VARIANTS, DeliveryStatus

METRICS = ("clicks", "opens")
MIN_ARMS, MAX_ARMS = 2, 5
MIN_PERCENT, MAX_PERCENT = 1, 50
# 0 means "an operator decides" (`--decide-now`); otherwise long enough for readers to act,
# short enough that the rest still get the issue the same day.
MIN_WAIT = timedelta(minutes=10)
MAX_WAIT = timedelta(hours=24)


class SubjectTestStatus(StrEnum):
    SAMPLING = "sampling"  # the sample is being sent
    WAITING = "waiting"  # the sample is sent; readers have until decide_at
    DECIDED = "decided"  # the winner is being sent to everyone else
    DONE = "done"  # the issue's send is over
    CANCELLED = "cancelled"  # the issue was cancelled


PENDING = (SubjectTestStatus.SAMPLING, SubjectTestStatus.WAITING)


def arm_label(arm: int) -> str:
    """Arms as people name them: A, B, C ..."""
    return chr(ord("A") + arm)


# --- the options ----------------------------------------------------------------------------

CLI_NAMES = {
    "ja": "--subject-ja",
    "en": "--subject-en",
    "sample": "--sample",
    "wait": "--wait",
    "metric": "--metric",
}
API_NAMES = {
    "ja": "subjects_ja",
    "en": "subjects_en",
    "sample": "sample",
    "wait": "wait",
    "metric": "metric",
}


@dataclass(frozen=True, slots=True)
class SubjectTestPlan:
    """A test as asked for, validated: subjects per language (empty: the issue's own)."""

    ja: tuple[str, ...]
    en: tuple[str, ...]
    sample_percent: int
    wait_seconds: int
    metric: str

    @property
    def arms(self) -> int:
        return len(self.ja or self.en)


_PERCENT = re.compile(r"\s*(\d{1,3})\s*%?\s*")
_WAIT = re.compile(r"\s*(\d{1,5})\s*([mhd]?)\s*")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
# One line: no control characters (C0, DEL, C1) and no Unicode line or paragraph separators.
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def parse_percent(text: str | int, name: str = "--sample") -> int:
    """ "20%" (or 20) as a whole percentage from 1 to 50."""
    match = _PERCENT.fullmatch(str(text))
    value = int(match.group(1)) if match else -1
    if not MIN_PERCENT <= value <= MAX_PERCENT:
        raise ValidationError(
            f"{name}: expected a percentage of the audience from {MIN_PERCENT}% to "
            f"{MAX_PERCENT}%, like 20%, got {str(text)!r}"
        )
    return value


def parse_wait(text: str | int, name: str = "--wait") -> int:
    """ "30m", "2h", "1d" as seconds (a bare number is minutes); "0": an operator decides."""
    match = _WAIT.fullmatch(str(text))
    problem = f"{name}: expected 0 or a duration from 10m to 24h, like 30m, 2h or 1d"
    if match is None:
        raise ValidationError(f"{problem}, got {str(text)!r}")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "m"]
    if seconds and not MIN_WAIT.total_seconds() <= seconds <= MAX_WAIT.total_seconds():
        raise ValidationError(f"{problem}, got {str(text)!r}")
    return seconds


def check_subject(text: str, name: str, number: int) -> str:
    """One subject as the renderer will use it, or a ValidationError naming it."""
    where = f"{name} #{number}"
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(f"{where}: expected a subject line, got an empty one")
    if _NOT_ONE_LINE.search(text):
        raise ValidationError(f"{where}: expected one line without control characters")
    if any(slot in text for slot in SLOTS):
        raise ValidationError(f"{where}: {text!r} holds a reserved personalisation marker")
    subject = " ".join(text.split())
    width = display_width(subject)
    if width > SUBJECT_MAX:
        raise ValidationError(
            f"{where}: {width} columns, expected at most {SUBJECT_MAX} "
            "(a full-width character counts as two)"
        )
    return subject


def plan_test(
    ja: Sequence[str],
    en: Sequence[str],
    sample: str | int,
    wait: str | int,
    metric: str,
    names: dict[str, str] = CLI_NAMES,
) -> SubjectTestPlan:
    """Validate a test's options; every error names the option and what was expected."""
    subjects: dict[str, tuple[str, ...]] = {}
    for lang, given in (("ja", ja), ("en", en)):
        subjects[lang] = tuple(
            check_subject(s, names[lang], n) for n, s in enumerate(given or (), start=1)
        )
        count = len(subjects[lang])
        if count and not MIN_ARMS <= count <= MAX_ARMS:
            raise ValidationError(
                f"{names[lang]}: expected {MIN_ARMS} to {MAX_ARMS} subjects (one per arm), "
                f"got {count}"
            )
    if not subjects["ja"] and not subjects["en"]:
        raise ValidationError(
            f"{names['ja']} / {names['en']}: expected {MIN_ARMS} to {MAX_ARMS} subjects in at "
            "least one language"
        )
    if subjects["ja"] and subjects["en"] and len(subjects["ja"]) != len(subjects["en"]):
        raise ValidationError(
            f"{names['en']}: expected as many subjects as {names['ja']} "
            f"({len(subjects['ja'])}; arms pair by position), got {len(subjects['en'])}"
        )
    arms = list(zip(*(subjects[lang] for lang in ("ja", "en") if subjects[lang]), strict=True))
    if len(set(arms)) != len(arms):
        raise ValidationError(
            f"{names['ja']} / {names['en']}: two arms have the same subjects; expected "
            "different subjects to compare"
        )
    if metric not in METRICS:
        raise ValidationError(f"{names['metric']}: expected {' or '.join(METRICS)}, got {metric!r}")
    return SubjectTestPlan(
        ja=subjects["ja"],
        en=subjects["en"],
        sample_percent=parse_percent(sample, names["sample"]),
        wait_seconds=parse_wait(wait, names["wait"]),
        metric=metric,
    )


def sample_size(eligible: int, percent: int, arms: int) -> int:
    """The sample: `percent` of the eligible audience, rounded down; every arm needs a reader."""
    size = eligible * percent // 100
    if size < arms:
        raise StateError(
            f"{percent}% of {eligible} eligible subscribers is {size}, fewer than the {arms} "
            "subjects: a subject-line test needs at least one reader per subject"
        )
    return size


# --- the subjects each arm sends ------------------------------------------------------------


def arm_subjects(view: IssueView, plan: SubjectTestPlan, settings: Settings) -> dict[str, Any]:
    """Each arm's subject per variant, by the renderer's own rules: the arm's subject stands
    in for the editor's subject of its language, a language not given keeps the issue's own,
    and the bilingual variants combine both languages as the renderer does."""
    variants: dict[str, list[str]] = {v: [] for v in VARIANTS}
    for arm in range(plan.arms):
        arm_view = replace(
            view,
            subject_ja=plan.ja[arm] if plan.ja else view.subject_ja,
            subject_en=plan.en[arm] if plan.en else view.subject_en,
        )
        for variant in VARIANTS:
            variants[variant].append(subject_for(arm_view, variant, settings))
    return {
        "ja": list(variants["ja"]),
        "en": list(variants["en"]),
        "given": [lang for lang in ("ja", "en") if getattr(plan, lang)],
        "variants": variants,
    }


# --- the test's row -------------------------------------------------------------------------


def find_test(session: Session, issue_id: int) -> SubjectTest | None:
    return session.scalar(select(SubjectTest).where(SubjectTest.issue_id == issue_id))


def get_test(session: Session, issue_id: int) -> SubjectTest:
    test = find_test(session, issue_id)
    if test is None:
        raise NotFoundError(
            f"issue {issue_id} has no subject-line test: start one with "
            f"`newsletter issue ab-test {issue_id} --subject-ja ... --subject-ja ...`"
        )
    return test


def create_test(
    session: Session,
    issue_id: int,
    plan: SubjectTestPlan,
    subjects: dict[str, Any],
    *,
    sample: int,
    created_by: str,
    now: datetime,
) -> SubjectTest:
    if find_test(session, issue_id) is not None:
        raise StateError(f"issue {issue_id} already has a subject-line test")
    test = SubjectTest(
        issue_id=issue_id,
        subjects=subjects,
        sample_percent=plan.sample_percent,
        wait_seconds=plan.wait_seconds,
        metric=plan.metric,
        status=SubjectTestStatus.SAMPLING.value,
        sample_size=sample,
        created_by=created_by,
        created_at=now,
    )
    session.add(test)
    session.flush()
    return test


def planning_arm(session: Session, issue_id: int) -> tuple[bool, int | None]:
    """For the planner: (hold, arm). `hold`: a test is sampling or waiting, so nobody else may
    be planned yet; `arm`: the winner everyone planned from now on gets (late subscribers)."""
    row = session.execute(
        select(SubjectTest.status, SubjectTest.winner_arm).where(SubjectTest.issue_id == issue_id)
    ).one_or_none()
    if row is None:
        return False, None
    return row.status in PENDING, row.winner_arm


def is_waiting(session: Session, issue_id: int) -> bool:
    """The issue's sample is out and its test waits for the decision (one indexed lookup)."""
    status = session.scalar(select(SubjectTest.status).where(SubjectTest.issue_id == issue_id))
    return status == SubjectTestStatus.WAITING


def hold_send(session: Session, issue_id: int, now: datetime) -> bool:
    """The issue's send looks over: if it was a test's sample, start the wait and keep the
    issue `sending` (True); False when no test holds it. Caller's transaction."""
    tests = SubjectTest.__table__
    row = session.execute(
        select(tests.c.status, tests.c.wait_seconds).where(tests.c.issue_id == issue_id)
    ).one_or_none()
    if row is None or row.status not in PENDING:
        return False
    if row.status == SubjectTestStatus.SAMPLING:
        session.execute(
            update(tests)
            .where(tests.c.issue_id == issue_id, tests.c.status == SubjectTestStatus.SAMPLING.value)
            .values(
                status=SubjectTestStatus.WAITING.value,
                decide_at=now + timedelta(seconds=row.wait_seconds) if row.wait_seconds else None,
            )
        )
    return True


def finish_test(session: Session, issue_id: int) -> None:
    """The issue's send is over: a decided test is done. Caller's transaction."""
    tests = SubjectTest.__table__
    session.execute(
        update(tests)
        .where(tests.c.issue_id == issue_id, tests.c.status == SubjectTestStatus.DECIDED.value)
        .values(status=SubjectTestStatus.DONE.value)
    )


def cancel_test(session: Session, issue_id: int) -> None:
    """The issue was cancelled: its test will never decide. Caller's transaction."""
    tests = SubjectTest.__table__
    session.execute(
        update(tests)
        .where(tests.c.issue_id == issue_id, tests.c.status.in_([s.value for s in PENDING]))
        .values(status=SubjectTestStatus.CANCELLED.value)
    )


def due_tests(session: Session, now: datetime) -> list[int]:
    """Issues whose test waited long enough and is ready to decide."""
    return list(
        session.scalars(
            select(SubjectTest.issue_id)
            .where(
                SubjectTest.status == SubjectTestStatus.WAITING.value,
                SubjectTest.decide_at.is_not(None),
                SubjectTest.decide_at <= now,
            )
            .order_by(SubjectTest.decide_at)
        )
    )


# --- who won --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArmCount:
    sent: int  # recipients of the arm in the ledger
    accepted: int  # ... the provider accepted
    readers: int  # distinct readers who clicked (or opened): machines and prefetches left out

    @property
    def rate(self) -> Fraction:
        return Fraction(self.readers, self.accepted) if self.accepted else Fraction(0)


def choose_winner(counts: Sequence[ArmCount]) -> int:
    """The arm with the highest rate; on a tie the lower arm (the first subject given). Pure."""
    if not counts:
        raise ValueError("no arms to choose from")
    best = 0
    for arm, count in enumerate(counts):
        if count.rate > counts[best].rate:
            best = arm
    return best


def arm_counts(session: Session, issue_id: int, metric: str, arms: int) -> list[ArmCount]:
    """Per arm: recipients, accepted, and unique reader clickers (or openers), from the ledger
    and the first-party events (`machine` clicks and non-reader opens never count)."""
    ledger = {
        arm: (sent, accepted or 0)
        for arm, sent, accepted in session.execute(
            select(
                Delivery.subject_arm,
                func.count(),
                func.sum(case((delivery_status() == DeliveryStatus.ACCEPTED.value, 1), else_=0)),
            )
            .outerjoin(SendBatch, SendBatch.id == Delivery.batch_id)
            .where(Delivery.issue_id == issue_id, Delivery.subject_arm.is_not(None))
            .group_by(Delivery.subject_arm)
        )
    }
    if metric == "clicks":
        event: Any = ClickEvent
        reader = ClickEvent.machine == false()
    else:
        event = OpenEvent
        reader = OpenEvent.source == classify.READER
    readers = dict(
        session.execute(
            select(Delivery.subject_arm, func.count(func.distinct(event.delivery_id)))
            .join(Delivery, Delivery.id == event.delivery_id)
            .where(event.issue_id == issue_id, reader, Delivery.subject_arm.is_not(None))
            .group_by(Delivery.subject_arm)
        ).all()
    )
    return [
        ArmCount(ledger.get(arm, (0, 0))[0], int(ledger.get(arm, (0, 0))[1]), readers.get(arm, 0))
        for arm in range(arms)
    ]


def results_of(test: SubjectTest, counts: Sequence[ArmCount], winner: int) -> dict[str, Any]:
    """What the test records when it decides (and `--status` shows)."""
    variants = test.subjects["variants"]
    return {
        "metric": test.metric,
        "winner_arm": winner,
        "arms": [
            {
                "arm": arm,
                "label": arm_label(arm),
                "subjects": {"ja": variants["ja"][arm], "en": variants["en"][arm]},
                "sent": count.sent,
                "accepted": count.accepted,
                test.metric: count.readers,
                "rate": round(float(count.rate), 4),
            }
            for arm, count in enumerate(counts)
        ],
    }


def record_decision(
    test: SubjectTest, counts: Sequence[ArmCount], now: datetime, decided_by: str
) -> int:
    winner = choose_winner(counts)
    test.results = {**results_of(test, counts, winner), "decided_by": decided_by}
    test.winner_arm = winner
    test.decided_at = now
    test.status = SubjectTestStatus.DECIDED.value
    return winner


def arms_of(test: SubjectTest) -> int:
    return len(test.subjects["variants"]["ja"])


def describe_test(session: Session, test: SubjectTest) -> dict[str, Any]:
    """The test as plain data (`--status --json`, the API, the desk): live counts until it is
    decided, the recorded results after."""
    arms = arms_of(test)
    results = test.results
    if results is None:
        counts = arm_counts(session, test.issue_id, test.metric, arms)
        results = results_of(test, counts, choose_winner(counts))
        results["winner_arm"] = None  # nothing is decided yet: the counts so far
    return {
        "issue_id": test.issue_id,
        "status": test.status,
        "metric": test.metric,
        "sample_percent": test.sample_percent,
        "sample_size": test.sample_size,
        "wait_seconds": test.wait_seconds,
        "created_by": test.created_by,
        "created_at": test.created_at.isoformat(),
        "decide_at": test.decide_at.isoformat() if test.decide_at else None,
        "decided_at": test.decided_at.isoformat() if test.decided_at else None,
        "timezone": session.scalar(
            select(MailingList.timezone)
            .join(Issue, Issue.list_id == MailingList.id)
            .where(Issue.id == test.issue_id)
        ),
        "winner_arm": test.winner_arm,
        "winner_label": arm_label(test.winner_arm) if test.winner_arm is not None else None,
        "subjects": {
            "given": list(test.subjects.get("given", [])),
            "variants": {v: list(test.subjects["variants"][v]) for v in VARIANTS},
        },
        "arms": results["arms"],
    }


def local_hhmm(instant: str, zone: str | None, default: tzinfo | None = None) -> str:
    """An ISO instant as HH:MM and the zone's abbreviation in the list's zone."""
    tz = ZoneInfo(zone) if zone else default
    return datetime.fromisoformat(instant).astimezone(tz).strftime("%H:%M %Z").strip()


def status_line(data: dict[str, Any], default_tz: tzinfo | None = None) -> str:
    """One line for `issue status`: "subject-line test: waiting until 09:00 JST (metric
    clicks)", the time in the list's zone (`default_tz` when the list has none of its own)."""
    status, metric = data["status"], data["metric"]
    if status == SubjectTestStatus.SAMPLING:
        return f"subject-line test: sending the sample (metric {metric})"
    if status == SubjectTestStatus.WAITING:
        if data["decide_at"] is None:
            return (
                f"subject-line test: waiting for an operator (metric {metric}): "
                f"`newsletter issue ab-test {data['issue_id']} --decide-now`"
            )
        at = local_hhmm(data["decide_at"], data["timezone"], default_tz)
        return f"subject-line test: waiting until {at} (metric {metric})"
    if status in (SubjectTestStatus.DECIDED, SubjectTestStatus.DONE):
        arm = data["winner_arm"]
        winner = data["arms"][arm]
        return (
            f"subject-line test: {status}, subject {data['winner_label']} won "
            f"({metric} {winner[metric]} of {winner['accepted']}, rate {winner['rate']:.2%})"
        )
    return f"subject-line test: {status}"
