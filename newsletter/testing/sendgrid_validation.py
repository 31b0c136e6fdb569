"""SendGrid's own checks on a v3 mail/send body, as the stand-in server applies them: an empty
list means SendGrid would take the request."""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_REQUEST_BYTES = 30 * 1024 * 1024
MAX_PERSONALIZATION_FIELD_BYTES = 10_000
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")

TOO_LARGE_HTML = (
    b"<html><head><title>413 Request Entity Too Large</title></head><body>"
    b"<center><h1>413 Request Entity Too Large</h1></center></body></html>"
)


def error(message: str, field_name: str | None = None, help_url: str | None = None) -> dict:
    return {"message": message, "field": field_name, "help": help_url}


def validate_mail_send(payload: Any, reject: frozenset[str] = frozenset()) -> list[dict]:
    """SendGrid's checks on a mail/send body; an empty list means valid."""
    if not isinstance(payload, dict):
        return [error("Bad Request", None)]
    errors: list[dict] = []
    personalizations = payload.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        return [error("The personalizations field is required.", "personalizations")]
    if len(personalizations) > MAX_PERSONALIZATIONS:
        return [
            error("The personalizations field must have at most 1000 items.", "personalizations")
        ]
    total = 0
    seen: set[str] = set()
    for index, item in enumerate(personalizations):
        where = f"personalizations.{index}"
        if not isinstance(item, dict) or not isinstance(item.get("to"), list) or not item["to"]:
            errors.append(
                error("The to array is required for all personalization objects.", where + ".to")
            )
            continue
        for kind in ("to", "cc", "bcc"):
            for n, person in enumerate(item.get(kind) or ()):
                total += 1
                email = person.get("email") if isinstance(person, dict) else None
                if not isinstance(email, str) or not EMAIL.match(email) or email.lower() in reject:
                    errors.append(
                        error("Does not contain a valid address.", f"{where}.{kind}.{n}.email")
                    )
                    continue
                if email.lower() in seen:
                    errors.append(
                        error(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{email}] in the {where}.{kind} field.",
                            f"{where}.{kind}",
                        )
                    )
                seen.add(email.lower())
        for name in ("substitutions", "custom_args"):
            value = item.get(name)
            if value is None:
                continue
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                errors.append(error(f"The {name} values must be strings.", f"{where}.{name}"))
            elif len(orjson.dumps(value)) >= MAX_PERSONALIZATION_FIELD_BYTES:
                errors.append(
                    error(f"The {name} must total less than 10000 bytes.", f"{where}.{name}")
                )
    if total > MAX_RECIPIENTS:
        errors.append(
            error("The total number of recipients must be no more than 1000.", "personalizations")
        )
    sender = payload.get("from")
    if not isinstance(sender, dict) or not EMAIL.match(str(sender.get("email", ""))):
        errors.append(error("The from object must be provided for every email send.", "from.email"))
    if not payload.get("subject") and not all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    ):
        errors.append(error("The subject is required.", "subject"))
    content = payload.get("content")
    if (
        not isinstance(content, list)
        or not content
        or not all(isinstance(c, dict) and c.get("type") and c.get("value") for c in content)
    ):
        errors.append(
            error(
                "The content value must be a string at least one character in length.",
                "content.0.value",
            )
        )
    elif content[0].get("type") != "text/plain" and any(
        c.get("type") == "text/plain" for c in content
    ):
        errors.append(error("If present, text/plain must be first.", "content.0.type"))
    if "tracking_settings" in payload:
        errors.extend(validate_tracking_settings(payload["tracking_settings"]))
    return errors


# tracking_settings as SendGrid's v3 mail/send reference documents it: each setting an object,
# `enable` a boolean, the other members of the types below.
TRACKING_SETTINGS: dict[str, dict[str, type]] = {
    "click_tracking": {"enable": bool, "enable_text": bool},
    "open_tracking": {"enable": bool, "substitution_tag": str},
    "subscription_tracking": {"enable": bool, "text": str, "html": str, "substitution_tag": str},
    "ganalytics": {
        "enable": bool,
        "utm_source": str,
        "utm_medium": str,
        "utm_term": str,
        "utm_content": str,
        "utm_campaign": str,
    },
}
_TYPE_NAMES = {bool: "a boolean", str: "a string"}


def validate_tracking_settings(value: Any) -> list[dict]:
    """The shape of `tracking_settings`; an empty list means valid."""
    if not isinstance(value, dict):
        return [error("The tracking_settings field must be an object.", "tracking_settings")]
    errors: list[dict] = []
    for name, setting in value.items():
        where = f"tracking_settings.{name}"
        members = TRACKING_SETTINGS.get(name)
        if members is None:
            errors.append(error(f"The {where} field is not a tracking setting.", where))
            continue
        if not isinstance(setting, dict):
            errors.append(error(f"The {where} field must be an object.", where))
            continue
        for member, member_value in setting.items():
            expected = members.get(member)
            if expected is None:
                errors.append(
                    error(f"The {where}.{member} field is not allowed.", f"{where}.{member}")
                )
            elif not isinstance(member_value, expected):
                errors.append(
                    error(
                        f"The {where}.{member} field must be {_TYPE_NAMES[expected]}.",
                        f"{where}.{member}",
                    )
                )
    return errors
