"""A subject-line test's two phases on the ledger, with who started or decided them.

1. `start_test`: a random sample of the audience, split evenly across the subjects (arms), is
   planned and the issue becomes `sending`; whatever sends issues (`issue send`, the API's
   background send, workers) sends it. When the sample is settled the test waits
   (`issue_state.finish_if_done` keeps the issue `sending`), until `decide_at`.
2. `decide_test`: the arm with the best reader rate wins; everyone not yet planned (late
   subscribers too) is planned with the winner's subject and sent the same way.

Nobody gets two subjects: (issue, subscriber) is unique in the ledger and both phases plan only
those not planned yet. The rules (validation, subjects, the winner) are in
`newsletter.engagement.subject_tests`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission, Role
from newsletter.clock import Clock
from newsletter.config import Settings
from newsletter.db.models import Issue, MailingList, SubjectTest
from newsletter.delivery import issue_state
from newsletter.delivery.ledger import get_issue_row
from newsletter.delivery.planning import SampleReport, enqueue_issue, plan_sample
from newsletter.engagement import subject_tests as rules
from newsletter.engagement.subject_tests import SubjectTestPlan, SubjectTestStatus
from newsletter.errors import StateError
from newsletter.issues.variants import load_issue_view
from newsletter.types import IssueStatus

# Who decides when the wait is over: the scheduler, acting for the admin who started the test.
SCHEDULER = Actor("scheduler", Role.ADMIN)

_TRACKING_FLAG = {"clicks": ("click_tracking", "--click-tracking"),
                  "opens": ("open_tracking", "--open-tracking")}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DecideReport:
    issue_id: int
    winner_arm: int
    added: int  # recipients planned with the winner's subject
    batches: int


def _check_startable(
    session: Session, settings: Settings, issue: Issue, plan: SubjectTestPlan
) -> None:
    if issue.status != IssueStatus.BUILT:
        raise StateError(
            f"issue {issue.id} is {issue.status}: a subject-line test starts only on a built "
            "issue that is not sending yet"
        )
    if settings.require_approval and issue.approved_at is None:
        raise StateError(
            f"issue {issue.id} is not approved (NEWSLETTER_REQUIRE_APPROVAL): "
            f"`newsletter issue approve {issue.id}` or the desk first"
        )
    mailing_list = session.get_one(MailingList, issue.list_id)
    column, option = _TRACKING_FLAG[plan.metric]
    if not getattr(mailing_list, column):
        raise StateError(
            f"--metric {plan.metric}: list {mailing_list.slug!r} does not record "
            f"{plan.metric} ({column} is off): `newsletter lists update {mailing_list.slug} "
            f"{option} on` first"
        )
    if rules.find_test(session, issue.id) is not None:
        raise StateError(f"issue {issue.id} already has a subject-line test")


def start_test(
    session: Session,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    issue_id: int,
    plan: SubjectTestPlan,
    *,
    batch_size: int | None = None,
) -> SampleReport:
    """Plan the sample with its arms and record the test; the caller's sender sends it."""
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id, lock=True)
    _check_startable(session, settings, issue, plan)
    report = plan_sample(
        session, issue, settings, clock,
        sample=partial(rules.sample_size, percent=plan.sample_percent, arms=plan.arms),
        arms=plan.arms, batch_size=batch_size,
    )  # fmt: skip
    subjects = rules.arm_subjects(load_issue_view(session, issue.id), plan, settings)
    rules.create_test(
        session, issue.id, plan, subjects, sample=report.sample, created_by=actor.name,
        now=clock.now(),
    )  # fmt: skip
    audit.record(
        session, clock, actor, "issue.subject_test.start", issue=issue,
        before={"status": IssueStatus.BUILT.value},
        after={
            "status": issue.status, "metric": plan.metric, "sample_percent": plan.sample_percent,
            "wait_seconds": plan.wait_seconds, "eligible": report.eligible,
            "arms": report.arms, "subjects": {lang: list(getattr(plan, lang))
                                              for lang in ("ja", "en")},
        },
    )  # fmt: skip
    return report


def decide_test(
    session: Session,
    settings: Settings,
    clock: Clock,
    actor: Actor,
    issue_id: int,
    *,
    early: bool = False,
    batch_size: int | None = None,
) -> DecideReport:
    """Choose the winner from the sample's reader events and plan everyone else with it.

    Without `early` (the scheduler) only a test whose `decide_at` has passed is decided;
    `early` (an operator's `--decide-now`) decides a waiting test at once. Caller's txn.
    """
    actor.require(Permission.SEND)
    issue = get_issue_row(session, issue_id, lock=True)
    test = rules.get_test(session, issue_id)
    now = clock.now()
    _check_decidable(issue, test, now, early)
    counts = rules.arm_counts(session, issue_id, test.metric, rules.arms_of(test))
    winner = rules.record_decision(test, counts, now, actor.name)
    session.flush()
    report = enqueue_issue(
        session, issue, settings, clock, batch_size=batch_size, subject_arm=winner
    )
    issue_state.finish_if_done(session, issue_id, clock)  # nobody left to send: the end
    audit.record(
        session, clock, actor, "issue.subject_test.decide", issue=issue,
        before={"status": SubjectTestStatus.WAITING.value},
        after={
            "status": test.status, "winner_arm": winner, "early": early,
            "rates": [arm["rate"] for arm in (test.results or {}).get("arms", [])],
            "added": report.added,
        },
    )  # fmt: skip
    return DecideReport(issue_id, winner, report.added, report.batches)


def _check_decidable(issue: Issue, test: SubjectTest, now: datetime, early: bool) -> None:
    where = f"issue {issue.id}: the subject-line test"
    if test.status == SubjectTestStatus.SAMPLING:
        raise StateError(
            f"{where} is still sending its sample: decide when it is sent "
            f"(`newsletter issue status {issue.id}`)"
        )
    if test.status != SubjectTestStatus.WAITING:
        raise StateError(f"{where} is {test.status}: there is nothing left to decide")
    if issue.status not in (IssueStatus.SENDING, IssueStatus.PAUSED):
        raise StateError(f"{where} cannot decide: the issue is {issue.status}")
    if not early and (test.decide_at is None or test.decide_at > now):
        raise StateError(f"{where} waits until {test.decide_at}: use --decide-now to decide")


def due_issue_ids(session: Session, now: datetime) -> list[int]:
    """Sending issues whose test waited long enough (the scheduler decides them)."""
    due = rules.due_tests(session, now)
    if not due:
        return []
    return list(
        session.scalars(
            select(Issue.id).where(Issue.id.in_(due), Issue.status == IssueStatus.SENDING)
        )
    )
