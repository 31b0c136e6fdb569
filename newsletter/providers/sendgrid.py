"""The SendGrid provider: v3 `POST /v3/mail/send`, one personalization per recipient.

Every recipient gets their own personalization (never a shared To list) carrying their slot
values as `substitutions` (SendGrid fills the markers in subject, text and HTML), their own
`List-Unsubscribe` headers, and `custom_args` {issue_id, batch_id, delivery_id, subscriber_id}
that come back in webhook events.

A personalization is written directly as JSON text when none of its values needs an escape
(the common case), else built as plain dicts; orjson serialises the body around them (the
written ones inserted as `orjson.Fragment`). It is sent over one pooled, keep-alive
`httpx.Client` with explicit timeouts (the `sendgrid` package opens a connection per call and
has no default timeout; docs/providers.md has the measurements).

Newsletter (bulk) mail always switches SendGrid's own click and open tracking off
(`tracking_settings`): first-party tracking replaces it, and a subscriber who switched tracking
off must get untouched links whatever the account's defaults are. A tracked message's
personalizations also carry the recipient's SLOT_TRACKING_TOKEN.

Limits are enforced before sending: at most 1000 recipients (`BatchTooLarge` above), no address
twice (the later one is reported `failed`), `substitutions`/`custom_args` under 10,000 bytes
(that recipient `failed`), body under 30 MB (`BatchTooLarge`).

Answers: 200/202 accepted; 429 transient with `retry_after`; 5xx transient; a failure before
the request was fully written (connect, DNS, pool timeout) transient; a failure after it (read
timeout, reset, protocol error) `InDoubtProviderError`: SendGrid may have taken the batch;
413 `BatchTooLarge`; 401/403 permanent. A 400 that names personalizations
(`personalizations.3.to.0.email`) fails those recipients and the provider re-posts the rest
itself (nothing of a 400 request was sent), up to `MAX_400_ROUNDS` times; a 400 about a
personalization it cannot pin down is `BatchRejected` (the core splits); any other 400
(sender, content) is permanent for the whole message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

import httpx
import orjson

from newsletter.config import Secret, Settings
from newsletter.errors import (
    ConfigError,
    InDoubtProviderError,
    PermanentProviderError,
    TransientProviderError,
)
from newsletter.providers.base import (
    Batch,
    BatchRejected,
    BatchResult,
    BatchTooLarge,
    PreparedMessage,
    Recipient,
)
from newsletter.providers.mime import (
    address_problem,
    clean_display_name,
    list_id_value,
    transport_address,
)
from newsletter.providers.redact import redact_text
from newsletter.types import (
    SLOT_NAME,
    SLOT_PREFERENCES_URL,
    SLOT_TRACKING_TOKEN,
    SLOT_UNSUBSCRIBE_URL,
)

MAX_RECIPIENTS = 1000
MAX_REQUEST_BYTES = 30 * 1024 * 1024
MAX_FIELD_BYTES = 10_000  # substitutions, custom_args: per personalization
MAX_400_ROUNDS = 3
MAX_CATEGORIES = 10
_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)\b")
_HTML_SPECIAL = str.maketrans("", "", "<>&\"'")
_UNSAFE_IN_URL = re.compile(r"[\s<>\"']")
# Failures that happen before the request is fully written: the server cannot have acted on
# an incomplete request, so these are safe to retry. (A pool timeout never opened a stream.)
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


@dataclass
class Payload:
    """A request body and who is in it; recipients refused before sending are in `failed`."""

    data: bytes  # the JSON text, as posted
    included: list[Recipient]
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        """The body parsed back, for tests and tools; sending posts `data` as it is."""
        return orjson.loads(self.data)  # type: ignore[no-any-return]


def _field_problem(item: dict[str, Any]) -> str | None:
    """The exact size check of a personalization's `substitutions` and `custom_args`."""
    for name in ("substitutions", "custom_args"):
        if len(orjson.dumps(item[name])) >= MAX_FIELD_BYTES:
            return f"{name} reach SendGrid's 10,000-byte limit"
    return None


# JSON of a field with empty values; a value of n characters adds at most 6n bytes to it
# (`\u00XX` is the longest form orjson writes for one character), so fields whose values
# are shorter than the budget below cannot reach the limit and need no exact check.
_SLOTS_JSON = len(
    orjson.dumps(
        {SLOT_UNSUBSCRIBE_URL: "", SLOT_PREFERENCES_URL: "", SLOT_NAME: "", SLOT_TRACKING_TOKEN: ""}
    )
)
_ARGS_JSON = len(
    orjson.dumps({"batch_id": "", "delivery_id": "", "subscriber_id": "", "issue_id": ""})
)
_VALUE_CHARS_BUDGET = (MAX_FIELD_BYTES - 1 - max(_SLOTS_JSON, _ARGS_JSON)) // 6
_ONE_CLICK = "List-Unsubscribe=One-Click"
# An ASCII address `address_problem` has nothing against: no reserved character or
# whitespace, something before the last @, a dot after it (the domain needs no IDNA form).
_RESERVED = r"\r\n\t <>,;\"'()\[\]\\"
_PLAIN_ADDRESS = re.compile(f"[^{_RESERVED}]+@[^{_RESERVED}@]*\\.[^{_RESERVED}@]*")
# The common recipient in one pattern, `f"{email}\0{links}{mailto}"`: an ASCII address
# `address_problem` has nothing against (as `_PLAIN_ADDRESS`), without control characters,
# then links (and the mailto target) of printable ASCII other than space, quotes, angle
# brackets and backslash: fine as links without the general rule (`_UNSAFE_IN_URL`, which
# decides for anything else) and needing no JSON escape.
_RAW = _RESERVED + r"\x00-\x1f\x7f"
_PLAIN_RECIPIENT = re.compile(f"[^{_RAW}]+@[^{_RAW}@]*\\.[^{_RAW}@]*\\x00[!#-&(-;=?-\\[\\]-~]*")
# A display name (already cleaned) with nothing to take out for HTML and nothing orjson
# would escape or refuse (control characters, quotes, backslashes, lone surrogates).
_PLAIN_NAME = re.compile(r"[<>&\"'\\\x00-\x1f\ud800-\udfff]")
# A personalization written directly has no escapes and at most 4 bytes a character: under
# this many characters neither of its limited fields can reach MAX_FIELD_BYTES.
_PLAIN_ITEM_CHARS = MAX_FIELD_BYTES // 4
_LINK_PROBLEM = "a personal link contains whitespace, quotes or angle brackets"
# SendGrid's own tracking, off for every newsletter: it would rewrite our links (or the direct
# links of a subscriber who switched tracking off) and add its own pixel.
_TRACKING_OFF: dict[str, Any] = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
}


def _shared_fields(message: PreparedMessage, sandbox: bool) -> dict[str, Any]:
    sender: dict[str, str] = {"email": message.from_email}
    if message.from_name:
        sender["name"] = clean_display_name(message.from_name)
    body: dict[str, Any] = {
        "from": sender,
        "subject": message.subject,
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
    }
    if message.reply_to:
        name, address = parseaddr(message.reply_to)
        body["reply_to"] = {"email": address, **({"name": name} if name else {})}
    if message.categories:
        body["categories"] = [c[:255] for c in message.categories[:MAX_CATEGORIES]]
    headers: dict[str, str] = {}
    if message.list_id:
        headers["List-Id"] = list_id_value(message.list_id)
    if message.bulk:
        headers["Precedence"] = "bulk"
        body["tracking_settings"] = _TRACKING_OFF
    else:
        headers["Auto-Submitted"] = "auto-generated"
    body["headers"] = headers
    if sandbox:
        body["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return body


def _personalization(
    recipient: Recipient, name: str, custom_args: dict[str, str], bulk: bool, token: str | None
) -> dict[str, Any]:
    """One recipient's personalization as plain dicts: the form every payload is defined by,
    built for the recipients the direct JSON text in `build_payload` does not cover."""
    email = recipient.email
    unsubscribe = recipient.unsubscribe_url
    to = {"email": email if email.isascii() else transport_address(email)}
    if name:
        to["name"] = name
    item: dict[str, Any] = {
        "to": [to],
        "substitutions": {
            SLOT_UNSUBSCRIBE_URL: unsubscribe,
            SLOT_PREFERENCES_URL: recipient.preferences_url,
            SLOT_NAME: name.translate(_HTML_SPECIAL),
        },
        "custom_args": custom_args,
    }
    if token is not None:
        item["substitutions"][SLOT_TRACKING_TOKEN] = token
    if bulk:  # List-Unsubscribe as `list_unsubscribe` writes it; one-click needs https
        mailto = recipient.unsubscribe_mailto
        if unsubscribe:
            targets = f"<{unsubscribe}>, <{mailto}>" if mailto else f"<{unsubscribe}>"
            item["headers"] = {"List-Unsubscribe": targets, "List-Unsubscribe-Post": _ONE_CLICK}
        elif mailto:
            item["headers"] = {"List-Unsubscribe": f"<{mailto}>"}
    return item


def _json_key(name: str) -> str:
    return orjson.dumps(name).decode()


def build_payload(batch: Batch, recipients: Sequence[Recipient], *, sandbox: bool) -> Payload:
    """The mail/send body for `recipients` of `batch`, with the limits checked. Pure.

    One pass, the per-batch values computed once. A personalization whose values need no
    JSON escapes (the common case) is written directly as JSON text; any other goes through
    `_personalization` and orjson. The exact size check runs only for personalizations long
    enough to come near the limit.
    """
    if len(recipients) > MAX_RECIPIENTS:
        raise BatchTooLarge(
            f"SendGrid takes at most {MAX_RECIPIENTS} recipients per request, "
            f"batch {batch.batch_id} has {len(recipients)}"
        )
    message = batch.message
    bulk = message.bulk
    batch_id = str(batch.batch_id)
    issue_id = None if message.issue_id is None else str(message.issue_id)
    fixed_chars = len(batch_id) + len(issue_id or "")
    unsafe = _UNSAFE_IN_URL.search
    items: list[orjson.Fragment] = []
    fragment = orjson.Fragment
    included: list[Recipient] = []
    failed: dict[int, str] = {}
    seen: dict[str, int] = {}
    plain = _PLAIN_RECIPIENT.fullmatch
    plain_address = _PLAIN_ADDRESS.fullmatch
    plain_name = _PLAIN_NAME.search
    tracked = message.tracked
    # The constant JSON text around the values of a plain personalization.
    start = '{"to":[{"email":"'
    slots = f'"}}],"substitutions":{{{_json_key(SLOT_UNSUBSCRIBE_URL)}:"'
    preferences_key = f'",{_json_key(SLOT_PREFERENCES_URL)}:"'
    name_key = f'",{_json_key(SLOT_NAME)}:"'
    token_key = f'",{_json_key(SLOT_TRACKING_TOKEN)}:"'
    args = f'"}},"custom_args":{{"batch_id":{_json_key(batch_id)},"delivery_id":"'
    subscriber_key = '","subscriber_id":"'
    args_end = '"}' if issue_id is None else f'","issue_id":{_json_key(issue_id)}}}'
    name_at = '","name":"'
    list_unsubscribe = ',"headers":{"List-Unsubscribe":"<'
    one_click = f',"List-Unsubscribe-Post":{_json_key(_ONE_CLICK)}}}}}'
    token: str | None = None
    for recipient in recipients:
        email = recipient.email
        delivery_id = recipient.delivery_id
        unsubscribe = recipient.unsubscribe_url
        preferences = recipient.preferences_url
        mailto = recipient.unsubscribe_mailto
        links = unsubscribe + preferences  # one check: the rule is about single characters
        if tracked:
            token = recipient.tracking_token
            links += token
        key = email.lower()
        # One pattern for the common case: an ASCII address `address_problem` accepts, and
        # links (and the mailto target) of characters that are fine in a link and need no
        # JSON escape. Anything else takes the exact rules.
        if (
            email.isascii()
            and plain(f"{email}\0{links}{mailto or ''}") is not None
            and key not in seen
            and (token is None or token)
        ):
            name = " ".join(recipient.name.split())  # clean_display_name
            if plain_name(name) is None:  # no HTML special, nothing JSON escapes
                if not bulk:
                    tail = "}"
                elif unsubscribe:  # List-Unsubscribe as `_personalization` writes it
                    if mailto:
                        tail = f'{list_unsubscribe}{unsubscribe}>, <{mailto}>"{one_click}'
                    else:
                        tail = f'{list_unsubscribe}{unsubscribe}>"{one_click}'
                elif mailto:
                    tail = f'{list_unsubscribe}{mailto}>"}}}}'
                else:
                    tail = "}"
                item = (
                    f"{start}{email}{f'{name_at}{name}' if name else ''}{slots}{unsubscribe}"
                    f"{preferences_key}{preferences}{name_key}{name}"
                    f"{'' if token is None else f'{token_key}{token}'}{args}{delivery_id}"
                    f"{subscriber_key}{recipient.subscriber_id}{args_end}{tail}"
                )
                # Values need no escapes and take at most 4 bytes a character: far enough
                # under the limit that the exact check can only agree.
                if len(item) < _PLAIN_ITEM_CHARS:
                    seen[key] = delivery_id
                    items.append(fragment(item))
                    included.append(recipient)
                    continue
        if email.isascii() and plain_address(email) is not None:
            problem = None  # what address_problem says of it, without the call
        else:
            problem = address_problem(email)
        if problem is None and key in seen:
            problem = f"the same address is already in this batch (delivery {seen[key]})"
        if tracked and not token and problem is None:
            problem = "a tracked message needs the recipient's tracking token"
        if problem is None and unsafe(links) is not None:
            problem = _LINK_PROBLEM
        if problem is not None:
            failed[delivery_id] = problem
            continue
        name = " ".join(recipient.name.split())  # clean_display_name
        delivery = str(delivery_id)
        subscriber = str(recipient.subscriber_id)
        if issue_id is not None:
            custom_args = {"batch_id": batch_id, "delivery_id": delivery,
                           "subscriber_id": subscriber, "issue_id": issue_id}  # fmt: skip
        else:
            custom_args = {"batch_id": batch_id, "delivery_id": delivery,
                           "subscriber_id": subscriber}  # fmt: skip
        entry = _personalization(recipient, name, custom_args, bulk, token)
        if (
            len(links) + len(name) >= _VALUE_CHARS_BUDGET
            or fixed_chars + len(delivery) + len(subscriber) >= _VALUE_CHARS_BUDGET
        ):
            problem = _field_problem(entry)
            if problem is not None:
                failed[delivery_id] = problem
                continue
        seen[key] = delivery_id
        items.append(fragment(orjson.dumps(entry)))
        included.append(recipient)
    body = _shared_fields(message, sandbox)
    body["personalizations"] = items  # orjson copies each Fragment's text as it is
    data = orjson.dumps(body)
    return Payload(data=data, included=included, failed=failed)


def retry_after_seconds(headers: httpx.Headers, now: float) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `X-RateLimit-Reset` (epoch)."""
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _released(response: httpx.Response) -> httpx.Response:
    """The answer, read and closed, without its link back from the body stream.

    httpx binds a response and its body stream to each other (encode/httpx#3733), so a
    response, its request and the whole batch payload that request holds (about 200 KB) wait
    for the cyclic collector, which a send keeps quiet: at a million recipients the waiting
    payloads added 50-100 MB to the peak. Without the cycle they go with the last reference."""
    response.stream = httpx.ByteStream(b"")  # the body is read: `content` keeps it
    return response


def parse_errors(response: httpx.Response) -> list[dict[str, Any]]:
    """SendGrid's `{"errors": [...]}`, or one error holding the (possibly HTML) body's start."""
    try:
        data = orjson.loads(response.content)
        errors = data.get("errors") if isinstance(data, dict) else None
        if isinstance(errors, list):
            return [e for e in errors if isinstance(e, dict)]
    except orjson.JSONDecodeError:
        pass
    return [{"message": response.text[:200], "field": None}]


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors[:5]:
        where = f"{error.get('field')}: " if error.get("field") else ""
        parts.append(where + str(error.get("message", "")))
    return redact_text("; ".join(parts))


class SendGridProvider:
    """Posts batches to SendGrid over a pooled keep-alive connection. Thread-safe."""

    name = "sendgrid"
    max_batch_size = MAX_RECIPIENTS

    def __init__(
        self,
        api_key: Secret,
        host: str = "https://api.sendgrid.com",
        *,
        sandbox: bool = False,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        max_connections: int = 4,
        transport: httpx.BaseTransport | None = None,
        confirms_by_events: bool = False,
    ) -> None:
        self.sandbox = sandbox
        # True when SendGrid's Event Webhook reaches us: its events name our batch ids, so an
        # in-doubt batch can be settled from them.
        self.confirms_by_events = confirms_by_events
        self.endpoint = host.rstrip("/") + "/v3/mail/send"
        self.scopes_endpoint = host.rstrip("/") + "/v3/scopes"
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={
                "Authorization": f"Bearer {api_key.reveal()}",
                "Content-Type": "application/json",
                "User-Agent": "ainippo-newsletter",
            },
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridProvider:
        if settings.sendgrid_api_key is None:
            raise ConfigError("SENDGRID_API_KEY: required when NEWSLETTER_PROVIDER=sendgrid")
        return cls(
            settings.sendgrid_api_key,
            settings.sendgrid_host,
            sandbox=settings.sendgrid_sandbox,
            timeout=float(settings.sendgrid_timeout_s),
            max_connections=settings.send_concurrency,
            confirms_by_events=bool(settings.sendgrid_webhook_public_key)
            or settings.webhook_insecure,
        )

    def preflight(self) -> None:
        """Ask SendGrid whether the key works and may send mail (`GET /v3/scopes`)."""
        try:
            response = self._client.get(self.scopes_endpoint)
        except httpx.HTTPError as err:
            raise TransientProviderError(
                f"cannot reach SendGrid to check the API key: {type(err).__name__}"
            ) from None
        if response.status_code in (401, 403):
            raise ConfigError(
                f"SENDGRID_API_KEY: SendGrid refused the key ({response.status_code}): "
                f"{_describe(parse_errors(response))}"
            )
        if response.status_code != 200:
            raise TransientProviderError(
                f"SendGrid answered {response.status_code} to the key check",
                status=response.status_code,
            )
        try:
            scopes = orjson.loads(response.content).get("scopes") or []
        except (orjson.JSONDecodeError, AttributeError):
            scopes = []
        if "mail.send" not in scopes:
            raise ConfigError(
                "SENDGRID_API_KEY: the key lacks the mail.send permission "
                "(create a key restricted to Mail Send)"
            )

    def send_batch(self, batch: Batch) -> BatchResult:
        result = BatchResult(requests=0)
        remaining: Sequence[Recipient] = batch.recipients
        for _ in range(MAX_400_ROUNDS):
            payload = build_payload(batch, remaining, sandbox=self.sandbox)
            result.failed.update(payload.failed)
            if not payload.included:
                return result
            body = payload.data
            if len(body) >= MAX_REQUEST_BYTES:
                raise BatchTooLarge(
                    f"SendGrid request for batch {batch.batch_id} would be {len(body)} bytes "
                    "(limit 30 MB)"
                )
            response = self._post(body, result.failed)
            result.requests += 1
            if response.status_code in (200, 202):
                result.accepted.extend([r.delivery_id for r in payload.included])
                result.provider_message_id = response.headers.get("x-message-id")
                return result
            bad = self._rejected_positions(response, len(payload.included))
            for position, reason in bad.items():
                result.failed[payload.included[position].delivery_id] = reason
            remaining = [r for n, r in enumerate(payload.included) if n not in bad]
        raise BatchRejected(
            f"SendGrid kept refusing batch {batch.batch_id} after {MAX_400_ROUNDS} corrections",
            status=400,
        )

    def _post(self, body: bytes, failed: dict[int, str]) -> httpx.Response:
        """POST one request. Errors are sorted by when they happened: before the whole
        request was written nothing can have been sent (retry); after it, the answer is
        lost and SendGrid may have taken the batch (in doubt, never retried blindly)."""
        try:
            return _released(self._client.post(self.endpoint, content=body))
        except _NOT_SENT as err:
            raise TransientProviderError(
                f"SendGrid unreachable, nothing sent: {type(err).__name__}: {redact_text(str(err))}"
            ) from None
        except httpx.HTTPError as err:  # read timeout, reset, protocol error: after the body
            raise InDoubtProviderError(
                f"no answer from SendGrid after the request was sent "
                f"({type(err).__name__}: {redact_text(str(err)) or 'no detail'})",
                failed=failed,
            ) from None
        except RuntimeError as err:  # httpx: "the client has been closed"
            raise PermanentProviderError(f"SendGrid provider is closed: {err}") from None

    def _rejected_positions(self, response: httpx.Response, size: int) -> dict[int, str]:
        """For a 400 naming personalizations: {position: reason}. Any other answer raises."""
        status = response.status_code
        if status == 429:
            raise TransientProviderError(
                "SendGrid rate limit (429)",
                status=429,
                retry_after=retry_after_seconds(response.headers, time.time()),
            )
        if status >= 500:
            raise TransientProviderError(f"SendGrid server error {status}", status=status)
        if status == 413:
            raise BatchTooLarge("SendGrid refused the request as too large (413)", status=413)
        errors = parse_errors(response)
        detail = _describe(errors)
        if status in (401, 403):
            raise PermanentProviderError(
                f"SendGrid refused the API key ({status}): {detail}", status=status, body=detail
            )
        if status != 400:
            raise PermanentProviderError(f"SendGrid answered {status}: {detail}", status=status)
        positions: dict[int, str] = {}
        about_personalizations = False
        for error in errors:
            field_name = str(error.get("field") or "")
            if field_name.startswith("personalizations"):
                about_personalizations = True
            match = _PERSONALIZATION_FIELD.match(field_name)
            if match and int(match.group(1)) < size:
                reason = redact_text(f"{field_name}: {error.get('message', '')}")
                positions.setdefault(int(match.group(1)), reason)
        if positions:
            return positions
        if about_personalizations:
            raise BatchRejected(f"SendGrid refused the batch (400): {detail}", status=400)
        raise PermanentProviderError(f"SendGrid refused the message (400): {detail}", status=400)

    def close(self) -> None:
        self._client.close()
