"""Subscribers: add, show, search, update, unsubscribe, suppress, erase, export, import."""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from newsletter.accounts import audit
from newsletter.accounts.actors import Actor
from newsletter.providers.factory import make_provider
from newsletter.runtime import Runtime
from subscribers import consent, erasure, exporting, importing, service, suppression
from subscribers.addresses import mask_email

from .deps import (
    IdempotencyKey,
    Reader,
    RuntimeDep,
    SubscriberAdmin,
    decode_cursor,
    encode_cursor,
    unit,
)
from .schemas import (
    Changed,
    ConfirmationSent,
    ExpirePending,
    Language,
    Slug,
    SubscriberAdd,
    SubscriberImportOut,
    SubscriberOut,
    SubscriberStats,
    SubscriberUpdate,
    SubscriptionPage,
    Suppress,
    Unsubscribe,
)

router = APIRouter(prefix="/subscribers", tags=["subscribers"])
EmailPath = Annotated[str, PathParam(min_length=3, max_length=320, examples=["hanako@example.jp"])]


def _audit(runtime: Runtime, session: Any, actor: Actor, action: str, email: str, **extra: Any):
    # The audit log keeps a masked address: it outlives an erasure.
    audit.record(session, runtime.clock, actor, action, subject=mask_email(email), **extra)


@router.post(
    "",
    response_model=SubscriberOut | ConfirmationSent,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an address to a list",
    description="Records consent with source `api`. A suppressed address is 409; so is a "
    "list the person left (only they can come back, through the sign-up form).",
)
def add_subscriber(
    body: SubscriberAdd, runtime: RuntimeDep, actor: SubscriberAdmin, key: IdempotencyKey = None
) -> Any:
    if body.send_confirmation:
        provider = make_provider(runtime.settings)
        try:
            with unit(runtime) as session:
                consent.start_signup(
                    session, runtime.settings, runtime.clock, email=body.email, name=body.name,
                    language=body.language, list_slug=body.list, ip=None, user_agent=None,
                    wording_version=None, provider=provider, source="api",
                )  # fmt: skip
                _audit(runtime, session, actor, "subscriber.invite", body.email)
        finally:
            provider.close()
        return ConfirmationSent(
            email=mask_email(body.email),
            list=body.list,
            detail="confirmation sent unless already active or suppressed",
        )
    with unit(runtime) as session:
        subscription = service.add_subscriber(
            session, runtime.settings, runtime.clock, email=body.email, name=body.name,
            language=body.language, list_slug=body.list, source="api", status=body.status,
        )  # fmt: skip
        _audit(runtime, session, actor, "subscriber.add", body.email,
               after={"list": body.list, "status": subscription.status})  # fmt: skip
        return service.describe(session, subscription.subscriber)


@router.get("", response_model=SubscriptionPage, summary="Search subscriptions, a page at a time")
def search(
    runtime: RuntimeDep,
    actor: Reader,
    list: Annotated[Slug | None, Query(description="Only this list")] = None,
    status: Annotated[
        str | None,
        Query(pattern="^(pending|active|unsubscribed|bounced|complained|expired)$"),
    ] = None,
    q: Annotated[str | None, Query(max_length=320, description="Part of the address")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Any:
    after = None
    if cursor:
        after = decode_cursor(cursor, lambda v: (int(v[0]), str(v[1])))
    with unit(runtime) as session:
        items = service.search_subscriptions(
            session, list_slug=list, status=status, contains=q, after=after, limit=limit
        )
    next_cursor = (
        encode_cursor([items[-1]["id"], items[-1]["list"]]) if len(items) == limit else None
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/stats", response_model=SubscriberStats, summary="Counts per status and language")
def stats(runtime: RuntimeDep, actor: Reader, list: Annotated[Slug | None, Query()] = None) -> Any:
    with unit(runtime) as session:
        return service.subscriber_stats(session, list_slug=list)


@router.post(
    "/import",
    response_model=SubscriberImportOut,
    summary="Import a CSV file (the same rules and per-line report as the command line)",
)
def import_csv(
    runtime: RuntimeDep,
    actor: SubscriberAdmin,
    file: Annotated[UploadFile, File(description="CSV: UTF-8 (BOM or not) or Shift_JIS/CP932")],
    list: Annotated[Slug, Form()] = "daily",
    status: Annotated[str, Form(pattern="^(active|pending)$")] = "active",
    language: Annotated[Language, Form(description="When a row has none")] = "ja",
    encoding: Annotated[str | None, Form(max_length=40)] = None,
    key: IdempotencyKey = None,
) -> Any:
    with tempfile.TemporaryDirectory(prefix="newsletter-import-") as folder:
        path = Path(folder) / "upload.csv"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        summary = importing.import_csv(
            runtime.sessions, runtime.clock, path, list_slug=list, status=status,
            source="api", encoding=encoding, default_language=language,
        )  # fmt: skip
    data = summary.to_dict()
    data["file"] = file.filename or "upload.csv"
    data["problems"] = summary.problems
    with unit(runtime) as session:
        audit.record(
            session, runtime.clock, actor, "subscriber.import", subject=f"list:{list}",
            after={k: data[k] for k in ("rows", "imported", "updated", "rejected")},
        )  # fmt: skip
    return data


@router.get(
    "/export",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            }
        }
    },
    summary="Every subscription with status and consent, as CSV or JSON Lines",
)
def export(
    runtime: RuntimeDep,
    actor: SubscriberAdmin,
    list: Annotated[Slug | None, Query(description="Only this list")] = None,
    format: Annotated[str, Query(pattern="^(csv|jsonl)$")] = "csv",
) -> Any:
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - removed after the answer is sent
        "w", encoding="utf-8", newline="", suffix=f".{format}", delete=False
    )
    try:
        with handle, unit(runtime) as session:
            count = exporting.write_export(
                exporting.iter_export(session, list_slug=list), handle, fmt=format
            )
            audit.record(session, runtime.clock, actor, "subscriber.export_all",
                         subject=f"list:{list}" if list else None,
                         after={"rows": count, "format": format})  # fmt: skip
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return FileResponse(
        handle.name,
        media_type=media,
        filename=f"subscribers.{format}",
        background=BackgroundTask(Path(handle.name).unlink, missing_ok=True),
    )


@router.post(
    "/expire-pending", response_model=Changed, summary="Pending sign-ups older than N days expire"
)
def expire_pending(body: ExpirePending, runtime: RuntimeDep, actor: SubscriberAdmin) -> Any:
    with unit(runtime) as session:
        count = consent.expire_pending(session, runtime.clock, older_than=timedelta(days=body.days))
        audit.record(session, runtime.clock, actor, "subscriber.expire_pending",
                     after={"days": body.days, "expired": count})  # fmt: skip
    return {"changed": count, "detail": f"{count} pending subscription(s) expired"}


@router.get("/{email}", response_model=SubscriberOut, summary="One subscriber")
def show(email: EmailPath, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return service.show_subscriber(session, email=email)


@router.patch(
    "/{email}", response_model=SubscriberOut, summary="Change language, name, lists, tracking"
)
def update(
    email: EmailPath, body: SubscriberUpdate, runtime: RuntimeDep, actor: SubscriberAdmin
) -> Any:
    with unit(runtime) as session:
        before = service.show_subscriber(session, email=email)
        subscriber = service.update_subscriber(
            session, runtime.settings, runtime.clock, email=email, name=body.name,
            language=body.language, lists=body.lists, tracking=body.tracking,
            delete_events=body.delete_events, source="api",
        )  # fmt: skip
        after = service.describe(session, subscriber)
        _audit(runtime, session, actor, "subscriber.update", email,
               before=_summary(before), after=_summary(after))  # fmt: skip
        return after


def _summary(described: dict[str, Any]) -> dict[str, Any]:
    return {
        "language": described["language"],
        "lists": sorted(s["list"] for s in described["subscriptions"] if s["status"] == "active"),
        "tracking": described["tracking"],
    }


@router.delete(
    "/{email}",
    response_model=Changed,
    summary="Delete subscriptions (opt-out records are kept; erase forgets everything)",
)
def remove(
    email: EmailPath,
    runtime: RuntimeDep,
    actor: SubscriberAdmin,
    list: Annotated[Slug | None, Query(description="Only this list")] = None,
) -> Any:
    with unit(runtime) as session:
        count = service.remove_subscriber(session, email=email, list_slug=list)
        _audit(runtime, session, actor, "subscriber.remove", email,
               after={"list": list, "removed": count})  # fmt: skip
    return {"changed": count, "detail": f"{count} subscription(s) removed"}


@router.post("/{email}/unsubscribe", response_model=Changed, summary="End subscriptions")
def unsubscribe(
    email: EmailPath, body: Unsubscribe, runtime: RuntimeDep, actor: SubscriberAdmin
) -> Any:
    with unit(runtime) as session:
        count = service.unsubscribe_by_email(
            session, runtime.clock, email=email, list_slug=body.list, source="api"
        )
        _audit(runtime, session, actor, "subscriber.unsubscribe", email,
               after={"list": body.list, "ended": count})  # fmt: skip
    return {"changed": count, "detail": f"{count} subscription(s) ended"}


@router.post("/{email}/suppress", response_model=Changed, summary="Never mail this address")
def suppress(email: EmailPath, body: Suppress, runtime: RuntimeDep, actor: SubscriberAdmin) -> Any:
    with unit(runtime) as session:
        added = suppression.suppress(
            session, runtime.clock, email=email, reason=body.reason, source="api"
        )
        _audit(runtime, session, actor, "subscriber.suppress", email, after={"reason": body.reason})
    return {"changed": int(added), "detail": "suppressed" if added else "already suppressed"}


@router.post("/{email}/erase", response_model=Changed, summary="Forget an address (erasure)")
def erase(email: EmailPath, runtime: RuntimeDep, actor: SubscriberAdmin) -> Any:
    with unit(runtime) as session:
        found = erasure.erase(session, runtime.clock, email=email)
        _audit(runtime, session, actor, "subscriber.erase", email)
    detail = "erased" if found else "nothing stored"
    return {"changed": int(found), "detail": f"{detail}; the address stays suppressed"}


@router.get(
    "/{email}/export",
    response_model=dict[str, Any],
    summary="Everything stored about an address (access request)",
)
def export_data(email: EmailPath, runtime: RuntimeDep, actor: SubscriberAdmin) -> Any:
    with unit(runtime) as session:
        document = erasure.export_personal_data(session, email=email)
        _audit(runtime, session, actor, "subscriber.export", email)
    return document
