"""`POST /webhooks/sendgrid`: verify the signature on the raw bytes, then parse, then record.

Answers: 413 larger than NEWSLETTER_WEBHOOK_MAX_BYTES (checked while the body streams in,
before anything else), 403 bad or stale signature, 400 malformed body, 503 no key configured
(unless NEWSLETTER_WEBHOOK_INSECURE), 200 with counts once the batch is committed. Database
errors give a 500, so SendGrid retries the batch later; recording is idempotent.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from newsletter.delivery import in_doubt, issue_state
from newsletter.errors import WebhookError
from newsletter.logs import log_event
from newsletter.web.bodies import BodyTooLarge, read_limited
from newsletter.web.context import in_transaction, state_of
from newsletter.webhooks import sendgrid
from newsletter.webhooks.recording import RecordResult, record_events
from subscribers.hashing import EmailHasher

logger = logging.getLogger(__name__)


async def sendgrid_webhook(request: Request) -> Response:
    state = state_of(request)
    settings = state.settings
    try:  # the cap first: no signature or JSON work on a body that is too large
        body = await read_limited(request, settings.webhook_max_bytes)
    except BodyTooLarge as err:
        return JSONResponse({"error": err.detail}, status_code=413, headers=err.headers)
    try:
        if settings.sendgrid_webhook_public_key:
            sendgrid.verify(
                settings.sendgrid_webhook_public_key,
                signature=request.headers.get(sendgrid.SIGNATURE_HEADER),
                timestamp=request.headers.get(sendgrid.TIMESTAMP_HEADER),
                body=body,
                now=state.runtime.clock.now(),
                tolerance_s=settings.sendgrid_webhook_tolerance_s,
            )
        elif not settings.webhook_insecure:
            return JSONResponse(
                {
                    "error": "webhook signing key not configured "
                    "(NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY)"
                },
                status_code=503,
            )
        events = sendgrid.parse(body)
    except WebhookError as err:
        log_event(
            logger,
            "webhook.rejected",
            level=logging.WARNING,
            provider="sendgrid",
            status=err.status,
            reason=str(err),
        )
        return JSONResponse({"error": str(err)}, status_code=err.status)

    def work(session: Session) -> RecordResult:
        clock = state.runtime.clock
        result = record_events(
            session,
            events,
            received_at=clock.now(),
            hash_email=EmailHasher.load(session),
            soft_bounce_limit=settings.soft_bounce_limit,
        )
        # An event for a batch whose answer was lost proves SendGrid took it: settle it now.
        batches = {e.batch_id for e in events}
        result.settled = in_doubt.settle_from_events(session, batches, clock)
        if result.settled:
            issue_state.finish_settled(session, batches, clock)
        return result

    result = await in_transaction(request, work)
    log_event(logger, "webhook.recorded", provider="sendgrid", **result.as_dict())
    return JSONResponse(result.as_dict())
