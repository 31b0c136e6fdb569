"""Settings: one frozen object read from environment variables and an optional TOML file.

Every value is validated here, once, and an invalid one is a one-line `ConfigError` naming the
variable. Environment variables win over the TOML file (`NEWSLETTER_CONFIG`, default
`./newsletter.toml` if present), whose keys are the variable names in lower case without the
`NEWSLETTER_` prefix (`database_url = "..."`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ConfigError, SecretKeyError

PROVIDERS = ("outbox", "sendgrid", "smtp")


class Secret:
    """A string that never prints (starlette's idea): repr and str show a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    database_url: str
    provider: str
    outbox_dir: Path
    sendgrid_api_key: Secret | None
    sendgrid_host: str
    sendgrid_sandbox: bool
    sendgrid_webhook_public_key: str | None
    smtp_url: Secret | None
    base_url: str
    secret_keys: tuple[Secret, ...]  # first signs; all verify (rotation)
    from_address: Address
    reply_to: str | None
    newsletter_name: str
    postal_address: str
    timezone: ZoneInfo
    send_time: time
    catchup_deadline: time  # a missed morning send is skipped after this local time
    require_approval: bool  # the scheduler and `run` send only an issue an editor approved
    max_articles: int
    min_articles: int
    utm_params: str  # query string appended to article links, e.g. utm_source=newsletter
    workers: str  # "inline" | "external"
    send_batch_size: int
    send_concurrency: int
    rate_messages_per_s: float  # 0 = unlimited
    rate_requests_per_s: float  # 0 = unlimited
    preview_token: Secret | None
    log_format: str  # "text" | "json"
    var_dir: Path = field(default=Path("var"))
    sendgrid_webhook_tolerance_s: int = 600  # signed timestamp may be this far off now
    webhook_insecure: bool = False  # dev only: accept unsigned webhooks when no key is set
    sendgrid_timeout_s: int = 30  # seconds to wait for SendGrid's answer to one request
    reconcile_after_s: int = 900  # an in-doubt batch with no event is re-sent after this
    webhook_max_bytes: int = 4 * 1024 * 1024  # larger webhook bodies are refused (413)
    dkim_private_key: Path | None = None  # PEM file; with dkim_selector, SMTP/outbox mail is signed
    dkim_selector: str | None = None
    dkim_domain: str | None = None  # d= of the signature; None: the From domain
    inbound_domain: str | None = None  # where `newsletter inbound` receives unsubscribe+TOKEN@
    soft_bounce_limit: int = 3  # days with a soft bounce within 30 that suppress; 0 = never
    metrics_token: Secret | None = None  # bearer for /metrics besides any API token
    api_rate_per_minute: int = 600  # HTTP API requests per token per minute (429 beyond)
    api_upload_max_bytes: int = 50 * 1024 * 1024  # largest CSV upload to the HTTP API (413)
    click_tracking: bool = False  # first-party click tracking for lists created from now on
    events_retention_days: int = 90  # raw click/open events kept; then only counts remain

    @property
    def secret_key(self) -> Secret:
        return self.secret_keys[0]

    @property
    def dkim_signing_domain(self) -> str:
        """The DKIM `d=` domain: NEWSLETTER_DKIM_DOMAIN, else the From domain (IDNA form)."""
        domain = self.dkim_domain or self.from_address.domain
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain.lower()


def _str(value: str, name: str) -> str:
    return value


def _nonempty(value: str, name: str) -> str:
    if not value.strip():
        raise ConfigError(f"{name}: must not be empty")
    return value.strip()


def _http_url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: expected an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _bool(value: str, name: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _int_range(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(value: str, name: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {value!r}") from None
        if not lo <= number <= hi:
            raise ConfigError(f"{name}: expected {lo} to {hi}, got {number}")
        return number

    return parse


def _rate(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}: expected a number per second (0 = unlimited)") from None
    if number < 0:
        raise ConfigError(f"{name}: must be 0 (unlimited) or more, got {number}")
    return number


def _choice(*options: str) -> Callable[[str, str], str]:
    def parse(value: str, name: str) -> str:
        low = value.strip().lower()
        if low not in options:
            raise ConfigError(f"{name}: expected one of {', '.join(options)}, got {value!r}")
        return low

    return parse


def _timezone(value: str, name: str) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}: unknown time zone {value!r} (e.g. Asia/Tokyo)") from None


def _time(value: str, name: str) -> time:
    try:
        hours, minutes = value.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ConfigError(f"{name}: expected HH:MM (24-hour), got {value!r}") from None


def _address(value: str, name: str) -> Address:
    display, addr = parseaddr(value)
    if "@" not in addr:
        raise ConfigError(f"{name}: expected an address like 'AI日報 <news@example.com>'")
    local, _, domain = addr.rpartition("@")
    return Address(display_name=display, username=local, domain=domain)


def _database_url(value: str, name: str) -> str:
    if "://" not in value:
        raise ConfigError(f"{name}: expected a SQLAlchemy URL such as sqlite:///var/newsletter.db")
    scheme = value.split("://", 1)[0]
    if not scheme.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"{name}: only sqlite and postgresql are supported, got {scheme!r}")
    if scheme.startswith("postgresql") and "+" not in scheme:
        value = "postgresql+psycopg" + value[len(scheme) :]
    return value


_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _dns_name(value: str, name: str, *, label: bool = False) -> str:
    """A DNS name (IDNA for Unicode), or one label when `label` (a DKIM selector)."""
    low = value.strip().lower().rstrip(".")
    try:
        ascii_name = low.encode("idna").decode("ascii") if not low.isascii() else low
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if not ascii_name or (label and len(labels) > 1) or not all(map(_DNS_LABEL.match, labels)):
        kind = "one DNS label such as mail2026" if label else "a domain such as example.com"
        raise ConfigError(f"{name}: expected {kind}, got {value!r}")
    return ascii_name


def _secret(value: str, name: str) -> Secret | None:
    return Secret(value) if value else None


# name -> (parser, default). A default of None means "optional, no value".
_FIELDS: dict[str, tuple[str, Callable[[str, str], Any], str | None]] = {
    "database_url": ("NEWSLETTER_DATABASE_URL", _database_url, "sqlite:///var/newsletter.db"),
    "provider": ("NEWSLETTER_PROVIDER", _choice(*PROVIDERS), "outbox"),
    "outbox_dir": ("NEWSLETTER_OUTBOX_DIR", lambda v, n: Path(v), "var/outbox"),
    "sendgrid_api_key": ("SENDGRID_API_KEY", _secret, ""),
    "sendgrid_host": ("NEWSLETTER_SENDGRID_HOST", _http_url, "https://api.sendgrid.com"),
    "sendgrid_sandbox": ("NEWSLETTER_SENDGRID_SANDBOX", _bool, "false"),
    "sendgrid_webhook_public_key": ("NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY", _str, None),
    "smtp_url": ("NEWSLETTER_SMTP_URL", _secret, ""),
    "base_url": ("NEWSLETTER_BASE_URL", _http_url, "http://localhost:8000"),
    "from_address": ("NEWSLETTER_FROM", _address, "AI日報 <newsletter@localhost>"),
    "reply_to": ("NEWSLETTER_REPLY_TO", _str, None),
    "newsletter_name": ("NEWSLETTER_NAME", _nonempty, "AI日報"),
    "postal_address": (
        "NEWSLETTER_POSTAL_ADDRESS",
        _nonempty,
        "AI日報編集部, 1-2-3 Example-cho, Chiyoda-ku, Tokyo 100-0000, Japan",
    ),
    "timezone": ("NEWSLETTER_TIMEZONE", _timezone, "Asia/Tokyo"),
    "send_time": ("NEWSLETTER_SEND_TIME", _time, "07:00"),
    "catchup_deadline": ("NEWSLETTER_CATCHUP_DEADLINE", _time, "11:00"),
    "require_approval": ("NEWSLETTER_REQUIRE_APPROVAL", _bool, "false"),
    "max_articles": ("NEWSLETTER_MAX_ARTICLES", _int_range(1, 50), "8"),
    "min_articles": ("NEWSLETTER_MIN_ARTICLES", _int_range(0, 50), "1"),
    "utm_params": ("NEWSLETTER_UTM", _str, "utm_source=newsletter&utm_medium=email"),
    "workers": ("NEWSLETTER_WORKERS", _choice("inline", "external"), "inline"),
    "send_batch_size": ("NEWSLETTER_SEND_BATCH_SIZE", _int_range(1, 1000), "1000"),
    "send_concurrency": ("NEWSLETTER_SEND_CONCURRENCY", _int_range(1, 64), "16"),
    "rate_messages_per_s": ("NEWSLETTER_RATE_MESSAGES", _rate, "0"),
    "rate_requests_per_s": ("NEWSLETTER_RATE_REQUESTS", _rate, "0"),
    "preview_token": ("NEWSLETTER_PREVIEW_TOKEN", _secret, ""),
    "log_format": ("NEWSLETTER_LOG_FORMAT", _choice("text", "json"), "text"),
    "sendgrid_webhook_tolerance_s": (
        "NEWSLETTER_SENDGRID_WEBHOOK_TOLERANCE",
        _int_range(30, 86400),
        "600",
    ),
    "webhook_insecure": ("NEWSLETTER_WEBHOOK_INSECURE", _bool, "false"),
    "soft_bounce_limit": ("NEWSLETTER_SOFT_BOUNCE_LIMIT", _int_range(0, 365), "3"),
    "click_tracking": ("NEWSLETTER_CLICK_TRACKING", _bool, "false"),
    "events_retention_days": ("NEWSLETTER_EVENTS_RETENTION_DAYS", _int_range(1, 3650), "90"),
    "sendgrid_timeout_s": ("NEWSLETTER_SENDGRID_TIMEOUT", _int_range(1, 600), "30"),
    "reconcile_after_s": ("NEWSLETTER_RECONCILE_AFTER", _int_range(1, 86400), "900"),
    "dkim_private_key": ("NEWSLETTER_DKIM_PRIVATE_KEY", lambda v, n: Path(v), None),
    "dkim_selector": ("NEWSLETTER_DKIM_SELECTOR", lambda v, n: _dns_name(v, n, label=True), None),
    "dkim_domain": ("NEWSLETTER_DKIM_DOMAIN", _dns_name, None),
    "inbound_domain": ("NEWSLETTER_INBOUND_DOMAIN", _dns_name, None),
    "webhook_max_bytes": (
        "NEWSLETTER_WEBHOOK_MAX_BYTES",
        _int_range(64 * 1024, 64 * 1024 * 1024),
        str(4 * 1024 * 1024),
    ),
    "metrics_token": ("NEWSLETTER_METRICS_TOKEN", _secret, ""),
    "api_rate_per_minute": ("NEWSLETTER_API_RATE_LIMIT", _int_range(1, 1_000_000), "600"),
    "api_upload_max_bytes": (
        "NEWSLETTER_API_UPLOAD_MAX_BYTES",
        _int_range(64 * 1024, 1024 * 1024 * 1024),
        str(50 * 1024 * 1024),
    ),
}

ENV_NAMES: dict[str, str] = {key: spec[0] for key, spec in _FIELDS.items()}
SECRET_KEY_ENV = "NEWSLETTER_SECRET_KEY"
SECRET_KEY_FILE = "secret.key"
MIN_SECRET_KEY_CHARS = 32  # token_urlsafe(24) or more: 192+ bits for HMAC link signatures
_KEY_HINT = "e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _read_toml(env: Mapping[str, str]) -> dict[str, str]:
    explicit = env.get("NEWSLETTER_CONFIG")
    path = Path(explicit) if explicit else Path("newsletter.toml")
    if not path.exists():
        if explicit:
            raise ConfigError(f"NEWSLETTER_CONFIG: no such file {path}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"NEWSLETTER_CONFIG: {path} is not valid TOML: {err}") from None
    out: dict[str, str] = {}
    for key, value in data.items():
        env_name = (
            key.upper()
            if key.upper().startswith(("NEWSLETTER_", "SENDGRID_"))
            else ("NEWSLETTER_" + key.upper())
        )
        out[env_name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _secret_keys(raw: str | None, var_dir: Path, create: bool) -> tuple[Secret, ...]:
    """Comma-separated keys (newest first), else `var/secret.key`, created on first use."""
    if raw:
        keys = tuple(Secret(k.strip()) for k in raw.split(",") if k.strip())
        if not keys:
            raise SecretKeyError(f"{SECRET_KEY_ENV}: must not be empty")
        for number, key in enumerate(keys, start=1):
            if len(key.reveal()) < MIN_SECRET_KEY_CHARS:
                raise SecretKeyError(
                    f"{SECRET_KEY_ENV}: key {number} has {len(key.reveal())} characters, "
                    f"expected at least {MIN_SECRET_KEY_CHARS} random ones ({_KEY_HINT})"
                )
        return keys
    path = var_dir / SECRET_KEY_FILE
    if path.exists():
        return (Secret(read_key_file(path)),)
    if not create:
        raise SecretKeyError(f"{SECRET_KEY_ENV}: not set and {path} does not exist", missing=True)
    return (Secret(create_key_file(path)),)


def read_key_file(path: Path) -> str:
    """The key in `path`; SecretKeyError when it is unreadable, not text or too short.

    A short key makes every subscriber link forgeable, so it stops the program instead of
    being used; the message says what the file should hold.
    """
    expected = f"expected one line of at least {MIN_SECRET_KEY_CHARS} random characters"
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SecretKeyError(f"{path}: cannot read the secret key file ({err.strerror})") from None
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretKeyError(f"{path}: not UTF-8 text; {expected} ({_KEY_HINT})") from None
    if not value:
        raise SecretKeyError(f"{path}: empty; {expected} ({_KEY_HINT})")
    if len(value) < MIN_SECRET_KEY_CHARS:
        raise SecretKeyError(
            f"{path}: the key has {len(value)} characters; {expected} ({_KEY_HINT})"
        )
    return value


def create_key_file(path: Path) -> str:
    """Create `path` with a new random key, exactly once however many processes race.

    The key is written in full to a private temporary file in the same directory, which is
    then hard-linked to its final name: the link either appears complete or fails because
    another process won, and a loser reads the winner's key. So every process ends up
    signing with the same key and none ever reads a half-written file.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".secret.key.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except OSError as err:
        raise SecretKeyError(
            f"{path}: cannot create the secret key file ({err.strerror})"
        ) from None
    return read_key_file(path)


def load_settings(
    env: Mapping[str, str] | None = None, *, create_secret: bool = True, **overrides: Any
) -> Settings:
    """Read and validate every setting. `overrides` (field names) win, for tests and scripts."""
    environ = dict(os.environ if env is None else env)
    merged = {**_read_toml(environ), **environ}
    values: dict[str, Any] = {}
    for key, (name, parse, default) in _FIELDS.items():
        if key in overrides:
            continue
        raw = merged.get(name)
        if raw is None or raw == "":
            if default is None:
                values[key] = None
                continue
            raw = default
        values[key] = parse(raw, name)
    values.update(overrides)
    var_dir = Path(merged.get("NEWSLETTER_VAR_DIR", "var"))
    values.setdefault("var_dir", var_dir)
    if "secret_keys" not in values:
        values["secret_keys"] = _secret_keys(merged.get(SECRET_KEY_ENV), var_dir, create_secret)
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.min_articles > settings.max_articles:
        raise ConfigError(
            "NEWSLETTER_MIN_ARTICLES: must not exceed NEWSLETTER_MAX_ARTICLES "
            f"({settings.min_articles} > {settings.max_articles})"
        )
    if settings.provider == "sendgrid" and settings.sendgrid_api_key is None:
        raise ConfigError("SENDGRID_API_KEY: required when NEWSLETTER_PROVIDER=sendgrid")
    if settings.provider == "smtp" and settings.smtp_url is None:
        raise ConfigError("NEWSLETTER_SMTP_URL: required when NEWSLETTER_PROVIDER=smtp")
    _check_dkim(settings)


def _check_dkim(settings: Settings) -> None:
    """Key and selector come together; the key is a readable PEM private key; d= aligns."""
    if settings.dkim_selector and settings.dkim_private_key is None:
        raise ConfigError(
            "NEWSLETTER_DKIM_SELECTOR: set without NEWSLETTER_DKIM_PRIVATE_KEY (the PEM file)"
        )
    if settings.dkim_private_key is not None and not settings.dkim_selector:
        raise ConfigError("NEWSLETTER_DKIM_SELECTOR: required with NEWSLETTER_DKIM_PRIVATE_KEY")
    if settings.dkim_domain and settings.dkim_private_key is None:
        raise ConfigError("NEWSLETTER_DKIM_DOMAIN: set without NEWSLETTER_DKIM_PRIVATE_KEY")
    if settings.dkim_private_key is None:
        return
    dkim_private_key_bytes(settings)
    signing = settings.dkim_signing_domain
    sender = settings.from_address.domain.lower()
    sender = sender.encode("idna").decode("ascii") if not sender.isascii() else sender
    if not (sender == signing or sender.endswith("." + signing) or signing.endswith("." + sender)):
        raise ConfigError(
            f"NEWSLETTER_DKIM_DOMAIN: {signing} does not align with the From domain {sender} "
            "(DMARC needs the same domain or a parent/subdomain of it)"
        )


def dkim_private_key_bytes(settings: Settings) -> bytes | None:
    """The PEM bytes of NEWSLETTER_DKIM_PRIVATE_KEY, checked to be an RSA private key."""
    path = settings.dkim_private_key
    if path is None:
        return None
    name = "NEWSLETTER_DKIM_PRIVATE_KEY"
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"{name}: cannot read {path} ({err.strerror})") from None
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{name}: {path} is not an unencrypted PEM private key ({err})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise ConfigError(
            f"{name}: {path} must hold an RSA key of 1024 bits or more (2048 advised)"
        )
    # dkimpy reads PKCS#1 ("BEGIN RSA PRIVATE KEY"); a PKCS#8 file is accepted and converted.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
