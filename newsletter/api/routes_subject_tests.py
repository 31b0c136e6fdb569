"""Subject-line tests over HTTP: start one (its sample is sent at once), read it, decide it
early. The same functions as `newsletter issue ab-test`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from newsletter.delivery import subject_tests as phases
from newsletter.delivery.preflight import preflight
from newsletter.delivery.sendconfig import SendConfig
from newsletter.engagement import subject_tests as rules
from newsletter.issues.assembly import get_issue
from newsletter.pipeline import send_in_background
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime

from .deps import IdempotencyKey, Reader, RuntimeDep, Sender, unit
from .routes_issues import IssueRef
from .schemas import Closed

router = APIRouter(tags=["issues"])

Subject = Annotated[str, Field(min_length=1, max_length=300, examples=["今日のAI: 5本"])]


class SubjectTestStart(Closed):
    """Subjects pair by position (arm A is the first of each language); a language left
    empty keeps the issue's own subject in every arm."""

    subjects_ja: list[Subject] = Field(default_factory=list, max_length=rules.MAX_ARMS)
    subjects_en: list[Subject] = Field(default_factory=list, max_length=rules.MAX_ARMS)
    sample: Annotated[str, Field(pattern=r"^[0-9]{1,3}%?$", examples=["20%"])] = Field(
        "20%", description="Share of the audience in the sample: 1% to 50%"
    )
    wait: Annotated[str, Field(pattern=r"^[0-9]{1,5}[mhd]?$", examples=["2h"])] = Field(
        "2h",
        description="After the sample is sent: 10m to 24h (30m, 2h, 1d); 0: decide by hand",
    )
    metric: Literal["clicks", "opens"] = "clicks"


class ArmOut(BaseModel):
    arm: int
    label: str
    subjects: dict[str, str] = Field(description="The subject sent in Japanese and in English")
    sent: int
    accepted: int
    clicks: int | None = None
    opens: int | None = None
    rate: float = Field(description="Unique reader clicks (or opens) per accepted email")


class SubjectsOut(BaseModel):
    given: list[str]
    variants: dict[str, list[str]] = Field(description="Each arm's subject, per variant")


class SubjectTestOut(BaseModel):
    issue_id: int
    status: Literal["sampling", "waiting", "decided", "done", "cancelled"]
    metric: Literal["clicks", "opens"]
    sample_percent: int
    sample_size: int | None
    wait_seconds: int
    created_by: str
    created_at: str
    decide_at: str | None = Field(description="When the winner is chosen; null: by hand")
    decided_at: str | None
    timezone: str | None
    winner_arm: int | None
    winner_label: str | None
    subjects: SubjectsOut
    arms: list[ArmOut] = Field(description="Recorded results once decided, counts so far before")


class SubjectTestStarted(BaseModel):
    test: SubjectTestOut
    sending_in: Literal["server", "workers"]


def _test(runtime: Runtime, issue_id: int) -> dict[str, Any]:
    with unit(runtime) as session:
        return rules.describe_test(session, rules.get_test(session, issue_id))


def _preflight(runtime: Runtime) -> None:
    provider = make_provider(runtime.settings)
    try:
        preflight(runtime.settings, provider)
    finally:
        provider.close()


@router.post(
    "/issues/{ref}/subject-test",
    response_model=SubjectTestStarted,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a subject-line test: a random sample gets the subjects, now",
    description="Plans the sample (split evenly across the subjects) and answers at once; this "
    "server sends it (or `newsletter worker`). When the wait after the sample is over, the "
    "scheduler sends the winner to everyone else. Only a built (and, with "
    "NEWSLETTER_REQUIRE_APPROVAL, approved) issue of a list that records the metric.",
)
def start(
    ref: IssueRef,
    body: SubjectTestStart,
    runtime: RuntimeDep,
    actor: Sender,
    key: IdempotencyKey = None,
) -> Any:
    plan = rules.plan_test(
        body.subjects_ja, body.subjects_en, body.sample, body.wait, body.metric, rules.API_NAMES
    )
    with unit(runtime) as session:
        issue_id = get_issue(session, ref).id
    _preflight(runtime)
    config = SendConfig.from_settings(runtime.settings)
    with unit(runtime) as session:
        phases.start_test(
            session, runtime.settings, runtime.clock, actor, issue_id, plan,
            batch_size=config.batch_size,
        )  # fmt: skip
    thread = send_in_background(runtime, issue_id)
    return {"test": _test(runtime, issue_id), "sending_in": "server" if thread else "workers"}


@router.get(
    "/issues/{ref}/subject-test",
    response_model=SubjectTestOut,
    summary="An issue's subject-line test: its state, and each arm's results",
)
def show(ref: IssueRef, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        issue_id = get_issue(session, ref).id
    return _test(runtime, issue_id)


@router.post(
    "/issues/{ref}/subject-test/decide",
    response_model=SubjectTestStarted,
    summary="Decide a waiting subject-line test now and send the winner to everyone else",
)
def decide(ref: IssueRef, runtime: RuntimeDep, actor: Sender, key: IdempotencyKey = None) -> Any:
    with unit(runtime) as session:
        issue_id = get_issue(session, ref).id
    _preflight(runtime)
    config = SendConfig.from_settings(runtime.settings)
    with unit(runtime) as session:
        phases.decide_test(
            session, runtime.settings, runtime.clock, actor, issue_id, early=True,
            batch_size=config.batch_size,
        )  # fmt: skip
    thread = send_in_background(runtime, issue_id)
    return {"test": _test(runtime, issue_id), "sending_in": "server" if thread else "workers"}
