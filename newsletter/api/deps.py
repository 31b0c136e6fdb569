"""What routes share: the runtime, the acting token, permission checks, a transaction."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from newsletter.accounts.actors import Actor
from newsletter.accounts.roles import Permission
from newsletter.db.session import transaction
from newsletter.errors import AuthenticationError, ValidationError
from newsletter.runtime import Runtime

# Documents the scheme in OpenAPI; the gate (gate.py) has already checked the token.
bearer = HTTPBearer(auto_error=False, description="An API token: `newsletter tokens create`")


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def actor_of(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
) -> Actor:
    actor = getattr(request.state, "actor", None)
    if actor is None:  # only without the gate, which never happens in the served app
        raise AuthenticationError("missing, unknown, expired or revoked API token")
    return actor  # type: ignore[no-any-return]


def needs(permission: Permission) -> Callable[..., Actor]:
    """A dependency: the acting token, after checking its role allows `permission` (403)."""

    def check(actor: Annotated[Actor, Depends(actor_of)]) -> Actor:
        actor.require(permission)
        return actor

    check.permission = permission  # type: ignore[attr-defined]  # read by the route table test
    return check


Reader = Annotated[Actor, Depends(needs(Permission.READ))]
Editor = Annotated[Actor, Depends(needs(Permission.EDIT))]
Sender = Annotated[Actor, Depends(needs(Permission.SEND))]
SubscriberAdmin = Annotated[Actor, Depends(needs(Permission.MANAGE_SUBSCRIBERS))]
AccountAdmin = Annotated[Actor, Depends(needs(Permission.MANAGE_ACCOUNTS))]
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="Repeat a POST safely: the same key and body get the first answer again",
    ),
]


@contextmanager
def unit(runtime: Runtime) -> Iterator[Session]:
    with transaction(runtime.sessions) as session:
        yield session


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, shape: Callable[[Any], Any]) -> Any:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return shape(orjson.loads(raw))
    except (binascii.Error, ValueError, TypeError, IndexError, KeyError):
        raise ValidationError(
            "cursor: not a cursor this API gave out; pass next_cursor unchanged"
        ) from None
