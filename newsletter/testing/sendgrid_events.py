"""The stand-in server's Event Webhook: signed `processed` events for what it took, posted the
way SendGrid posts them (retried with backoff while the receiver is down)."""

from __future__ import annotations

import base64
import secrets
import threading
import time
import urllib.request
from typing import Any

import orjson


def processed_events(payload: dict, message_id: str, now: float) -> list[dict[str, Any]]:
    """One `processed` event per recipient of a taken request, as SendGrid posts them."""
    events = []
    for n, item in enumerate(payload["personalizations"]):
        args = item.get("custom_args") or {}
        for person in item["to"]:
            events.append(
                {
                    "email": person["email"],
                    "timestamp": int(now),
                    "event": "processed",
                    "sg_event_id": secrets.token_urlsafe(16),
                    "sg_message_id": f"{message_id}.filter{n}",
                    **{k: v for k, v in args.items() if isinstance(v, str)},
                }
            )
    return events


def sign_events(private_key: Any, body: bytes, timestamp: str) -> str:
    """SendGrid's Signed Event Webhook signature: ECDSA P-256 / SHA-256 over timestamp + body."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = private_key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def post_events_later(state: Any, faults: Any, payload: dict, message_id: str) -> None:
    """Post the events from a thread of their own, after `events_delay`, retrying like SendGrid
    (a few times, with backoff) when the receiver is down or answers an error."""

    def post() -> None:
        time.sleep(faults.events_delay)
        body = orjson.dumps(processed_events(payload, message_id, time.time()))
        for attempt in range(6):
            timestamp = str(int(time.time()))
            request = urllib.request.Request(
                str(faults.events_url),
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "X-Twilio-Email-Event-Webhook-Signature": sign_events(
                        faults.events_key, body, timestamp
                    ),
                    "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    if response.status == 200:
                        with state.lock:
                            state.events_posted += len(payload["personalizations"])
                        return
            except (OSError, ValueError):
                pass
            time.sleep(min(0.5 * 2**attempt, 5.0))
        with state.lock:
            state.events_failed += len(payload["personalizations"])

    threading.Thread(target=post, daemon=True, name="sendgrid-events").start()
