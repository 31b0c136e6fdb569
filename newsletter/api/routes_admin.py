"""API tokens and the audit log, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from newsletter.accounts import audit
from newsletter.accounts import tokens as api_tokens
from newsletter.issues.assembly import get_issue

from .deps import (
    AccountAdmin,
    IdempotencyKey,
    Reader,
    RuntimeDep,
    decode_cursor,
    encode_cursor,
    unit,
)
from .schemas import AuditPage, Changed, TokenCreate, TokenCreated, TokenOut

router = APIRouter(tags=["admin"])


@router.get("/tokens", response_model=list[TokenOut], summary="Every API token (never a secret)")
def list_tokens(runtime: RuntimeDep, actor: AccountAdmin) -> Any:
    with unit(runtime) as session:
        return api_tokens.list_tokens(session, runtime.clock)


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token; its secret is in this answer only",
)
def create_token(
    body: TokenCreate, runtime: RuntimeDep, actor: AccountAdmin, key: IdempotencyKey = None
) -> Any:
    with unit(runtime) as session:
        created = api_tokens.create_token(
            session, runtime.clock, actor, name=body.name, role=body.role,
            expires_days=body.expires_days,
        )  # fmt: skip
    return {
        "name": created.name,
        "role": created.role.value,
        "token": created.secret,
        "expires_at": created.expires_at.isoformat() if created.expires_at else None,
    }


@router.post(
    "/tokens/{name}/revoke", response_model=Changed, summary="Revoke a token: it stops at once"
)
def revoke_token(
    name: Annotated[str, Path(min_length=1, max_length=100)],
    runtime: RuntimeDep,
    actor: AccountAdmin,
) -> Any:
    with unit(runtime) as session:
        changed = api_tokens.revoke_token(session, runtime.clock, actor, name)
    return {"changed": int(changed), "detail": "revoked" if changed else "already revoked"}


@router.get("/audit", response_model=AuditPage, summary="The audit log, newest first")
def audit_log(
    runtime: RuntimeDep,
    actor: Reader,
    issue: Annotated[
        str | None,
        Query(
            pattern=r"^([0-9]{1,9}|([a-z0-9][a-z0-9-]{0,63}:)?[0-9]{4}-[0-9]{2}-[0-9]{2})$",
            description="Only this issue: id, date or slug:date",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    before = decode_cursor(cursor, lambda v: int(v["before"])) if cursor else None
    with unit(runtime) as session:
        found = get_issue(session, issue) if issue else None
        rows = audit.entries(session, issue=found, limit=limit, before_id=before)
        items = [audit.entry_dict(e) for e in rows]
    next_cursor = encode_cursor({"before": items[-1]["id"]}) if len(items) == limit else None
    return {"items": items, "next_cursor": next_cursor}
