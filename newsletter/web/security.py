"""Security for the public pages: response headers, CSRF tokens, a per-IP rate limit, editor auth.

Each piece is small and pure enough to test alone; `app.py` wires them in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.config import Settings
from newsletter.throttle import KeyedTokenBucket

# Pages: no scripts at all, our own stylesheet, forms only to ourselves, never framed.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# An email's HTML (archive, preview frames): its inline styles and remote images, still no script.
EMAIL_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "font-src https: data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
# The preview page frames our own preview documents.
PREVIEW_CSP = (
    "default-src 'none'; style-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


DEFAULT_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware: the defaults on every response; a route may set its own CSP/framing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in DEFAULT_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class CsrfSigner:
    """Signed double-submit tokens: a random nonce in a cookie, its signature in the form.

    A forged form cannot carry a signature of the victim's cookie nonce, and the signature
    expires, so a stale page must be reloaded. `bound` tokens (no cookie) sign a value the URL
    already authenticates, e.g. the preferences link token.
    """

    COOKIE = "nl_csrf"

    def __init__(self, settings: Settings, max_age_s: int = 2 * 3600) -> None:
        keys = [k.reveal() for k in reversed(settings.secret_keys)]
        self._serializer = URLSafeTimedSerializer(
            keys, salt="newsletter.web.csrf.v1", signer_kwargs={"digest_method": hashlib.sha256}
        )
        self.max_age_s = max_age_s

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(16)

    def sign(self, value: str) -> str:
        return self._serializer.dumps(value)

    def check(self, token: str | None, expected: str | None) -> bool:
        if not token or not expected:
            return False
        try:
            value = self._serializer.loads(token, max_age=self.max_age_s)
        except BadSignature:  # includes SignatureExpired
            return False
        return isinstance(value, str) and secrets.compare_digest(value, expected)

    @staticmethod
    def bind(secret_value: str) -> str:
        """A non-reversible stand-in for a URL token, to sign into a form."""
        return hashlib.sha256(secret_value.encode("utf-8")).hexdigest()[:32]


# The sign-up form's limit per client address (and the desk's sign-in limits).
SignupThrottle = KeyedTokenBucket


def client_ip(request: Request) -> str:
    """The peer address as uvicorn reports it (behind a proxy: run with --proxy-headers)."""
    return request.client.host if request.client else "unknown"


def editor_authorized(request: Request, settings: Settings) -> bool:
    """The preview token as a bearer token, a `token` query parameter, or a basic-auth password.

    With no NEWSLETTER_PREVIEW_TOKEN configured nobody is authorized: these pages are never public.
    """
    if settings.preview_token is None:
        return False
    expected = settings.preview_token.reveal().encode("utf-8")
    offered: list[str] = []
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        offered.append(value.strip())
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            offered.append(decoded.partition(":")[2])
        except (binascii.Error, ValueError, UnicodeError):
            pass
    if "token" in request.query_params:
        offered.append(request.query_params["token"])
    return any(secrets.compare_digest(o.encode("utf-8"), expected) for o in offered if o)
