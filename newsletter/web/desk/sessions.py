"""The desk's session cookie, its CSRF tokens and the sign-in rate limits.

The cookie is signed (itsdangerous, the settings' secret keys: the first signs, all verify) and
holds the account id, the account's `session_epoch`, when the session began (absolute expiry,
7 days), when it was last used (idle expiry, 8 hours) and a random nonce the page's CSRF tokens
are bound to. It is re-signed as it is used, so an active session stays open. Each request
re-reads the account: a disabled account, or a changed role or password (the epoch moved), ends
every session at once. Times come from the runtime's clock.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request
from starlette.responses import Response

from newsletter.config import Settings
from newsletter.web.security import CsrfSigner, SignupThrottle

COOKIE = "nl_desk"
PRE_COOKIE = "nl_desk_pre"  # the CSRF nonce of the sign-in forms, before there is a session
COOKIE_PATH = "/desk"
IDLE_S = 8 * 3600
ABSOLUTE_S = 7 * 24 * 3600
REFRESH_AFTER_S = 60  # re-sign the cookie (moving the idle clock) at most once a minute


@dataclass(frozen=True, slots=True)
class SessionData:
    user_id: int
    epoch: int
    issued_at: int
    seen_at: int
    nonce: str


class SessionSigner:
    def __init__(self, settings: Settings) -> None:
        keys = [k.reveal() for k in reversed(settings.secret_keys)]
        self._serializer = URLSafeSerializer(
            keys,
            salt="newsletter.web.desk.session.v1",
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self.secure = settings.base_url.startswith("https://")

    def new(self, user_id: int, epoch: int, now: datetime) -> SessionData:
        at = int(now.timestamp())
        return SessionData(user_id, epoch, at, at, secrets.token_urlsafe(16))

    def dumps(self, data: SessionData) -> str:
        return self._serializer.dumps(
            [data.user_id, data.epoch, data.issued_at, data.seen_at, data.nonce]
        )

    def loads(self, cookie: str | None, now: datetime) -> SessionData | None:
        """The session, or None when missing, forged, idle too long or too old."""
        if not cookie:
            return None
        try:
            raw = self._serializer.loads(cookie)
            user_id, epoch, issued_at, seen_at, nonce = raw
            data = SessionData(int(user_id), int(epoch), int(issued_at), int(seen_at), str(nonce))
        except (BadSignature, TypeError, ValueError):
            return None
        at = int(now.timestamp())
        if at - data.issued_at > ABSOLUTE_S or at - data.seen_at > IDLE_S:
            return None
        return data

    def set_cookie(self, response: Response, data: SessionData) -> None:
        response.set_cookie(
            COOKIE,
            self.dumps(data),
            max_age=ABSOLUTE_S,
            path=COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=self.secure
        )


class DeskState:
    """The desk's signers and limits, one per application."""

    def __init__(
        self,
        settings: Settings,
        *,
        account_limiter: SignupThrottle | None = None,
        address_limiter: SignupThrottle | None = None,
    ) -> None:
        self.sessions = SessionSigner(settings)
        self.csrf = CsrfSigner(settings, max_age_s=IDLE_S)
        # Per account: 5 tries, then one a minute. Per client address: 20, then one every 6 s.
        self.account_limiter = account_limiter or SignupThrottle(capacity=5, per_s=1 / 60)
        self.address_limiter = address_limiter or SignupThrottle(capacity=20, per_s=1 / 6)

    def csrf_token(self, nonce: str) -> str:
        return self.csrf.sign("desk:" + nonce)

    def csrf_ok(self, token: object, nonce: str | None) -> bool:
        if not isinstance(token, str) or not nonce:
            return False
        return self.csrf.check(token, "desk:" + nonce)


_lock = threading.Lock()


def desk_state(request: Request) -> DeskState:
    """The application's DeskState, made on first use (tests may set `app.state.desk`)."""
    app_state = request.app.state
    with _lock:
        state = getattr(app_state, "desk", None)
        if state is None:
            state = DeskState(app_state.web.settings)
            app_state.desk = state
        return state  # type: ignore[no-any-return]
