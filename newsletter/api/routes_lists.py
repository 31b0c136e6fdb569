"""Lists: create, list, show, change the send time, time zone or tracking."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from newsletter.accounts import audit
from subscribers import lists as mailing_lists

from .deps import IdempotencyKey, Reader, RuntimeDep, SubscriberAdmin, unit
from .schemas import ListCreate, ListUpdate, MailingListOut, Slug

router = APIRouter(prefix="/lists", tags=["lists"])


@router.get("", response_model=list[MailingListOut], summary="Every list")
def list_lists(runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return mailing_lists.list_summaries(session)


@router.post(
    "", response_model=MailingListOut, status_code=status.HTTP_201_CREATED, summary="Create a list"
)
def create_list(
    body: ListCreate, runtime: RuntimeDep, actor: SubscriberAdmin, key: IdempotencyKey = None
) -> Any:
    with unit(runtime) as session:
        created = mailing_lists.create_list(
            session,
            runtime.clock,
            slug=body.slug,
            name=body.name,
            description=body.description,
            timezone=body.timezone,
            send_time=body.send_time,
            double_opt_in=body.double_opt_in,
            click_tracking=(
                runtime.settings.click_tracking
                if body.click_tracking is None
                else body.click_tracking
            ),
            open_tracking=body.open_tracking,
        )
        audit.record(
            session, runtime.clock, actor, "list.create", list_id=created.id,
            subject=f"list:{created.slug}", after=body.model_dump(),
        )  # fmt: skip
        return mailing_lists.list_summaries(session, created.slug)[0]


@router.get("/{slug}", response_model=MailingListOut, summary="One list")
def show_list(slug: Slug, runtime: RuntimeDep, actor: Reader) -> Any:
    with unit(runtime) as session:
        return mailing_lists.list_summaries(session, slug)[0]


@router.patch("/{slug}", response_model=MailingListOut, summary="Change a list's settings")
def update_list(slug: Slug, body: ListUpdate, runtime: RuntimeDep, actor: SubscriberAdmin) -> Any:
    with unit(runtime) as session:
        changed, before, after = mailing_lists.update_list(
            session, slug=slug, **body.model_dump(exclude_unset=True)
        )
        audit.record(
            session, runtime.clock, actor, "list.update", list_id=changed.id,
            subject=f"list:{slug}", before=before, after=after,
        )  # fmt: skip
        return mailing_lists.list_summaries(session, slug)[0]
