"""`/metrics` in Prometheus text format, through `prometheus-client`.

The ledger's numbers are read from the database at scrape time by a custom collector, so
they are the same whichever process (scheduler, worker, server) sent: recipients by outcome,
batches by state and in flight, recipients and batches in doubt, batch retries, webhook
events by type, subscriptions, and the state of each list's last issue. What only a sending
process sees (provider latency, retries after transient errors) comes from
`newsletter.delivery.instruments` in this process.

Access needs a bearer: NEWSLETTER_METRICS_TOKEN, or an API token (every role may read).
Without one the answer is 401, from localhost too: behind a reverse proxy every request
comes from localhost, so the peer address proves nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.accounts.roles import Permission
from newsletter.accounts.tokens import authenticate
from newsletter.db.models import (
    Delivery,
    Event,
    Issue,
    MailingList,
    SendBatch,
    Subscription,
)
from newsletter.db.session import transaction
from newsletter.delivery import instruments
from newsletter.delivery.issue_state import settled_by_batches
from newsletter.errors import AuthenticationError, PermissionDeniedError
from newsletter.runtime import Runtime
from newsletter.types import BatchStatus, DeliveryStatus, IssueStatus

from .problems import problem

IN_FLIGHT = (BatchStatus.CLAIMED, BatchStatus.SENDING)


class LedgerCollector(Collector):
    """Reads the database at every scrape: a handful of grouped counts."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        with transaction(self.runtime.sessions) as session:
            deliveries: dict[str, int] = dict(
                session.execute(  # type: ignore[arg-type]
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                ).all()
            )
            # Members an accepted batch settled still read `queued` on their own rows.
            by_batch = settled_by_batches(session)
            if by_batch:
                deliveries[DeliveryStatus.QUEUED.value] -= by_batch
                accepted = DeliveryStatus.ACCEPTED.value
                deliveries[accepted] = deliveries.get(accepted, 0) + by_batch
            batches: dict[str, int] = dict(
                session.execute(  # type: ignore[arg-type]
                    select(SendBatch.status, func.count()).group_by(SendBatch.status)
                ).all()
            )
            retries = session.scalar(
                select(func.coalesce(func.sum(SendBatch.attempts - 1), 0)).where(
                    SendBatch.attempts > 1
                )
            )
            events = session.execute(select(Event.type, func.count()).group_by(Event.type)).all()
            subscriptions = session.execute(
                select(MailingList.slug, Subscription.status, func.count())
                .join(MailingList, MailingList.id == Subscription.list_id)
                .group_by(MailingList.slug, Subscription.status)
            ).all()
            last = (
                select(Issue.list_id, func.max(Issue.issue_date).label("day"))
                .group_by(Issue.list_id)
                .subquery()
            )
            last_issues = session.execute(
                select(MailingList.slug, Issue.issue_date, Issue.status)
                .join(last, (last.c.list_id == Issue.list_id) & (last.c.day == Issue.issue_date))
                .join(MailingList, MailingList.id == Issue.list_id)
            ).all()

        recipients = GaugeMetricFamily(
            "newsletter_recipients",
            "Recipients in the send ledger by outcome, all issues",
            labels=["outcome"],
        )
        for outcome in DeliveryStatus:
            recipients.add_metric([outcome.value], deliveries.get(outcome.value, 0))
        yield recipients

        by_state = GaugeMetricFamily(
            "newsletter_batches", "Send batches by state, all issues", labels=["state"]
        )
        for state in BatchStatus:
            by_state.add_metric([state.value], batches.get(state.value, 0))
        yield by_state
        yield GaugeMetricFamily(
            "newsletter_batches_in_flight",
            "Batches claimed or posted and not yet answered",
            value=sum(batches.get(s.value, 0) for s in IN_FLIGHT),
        )
        yield GaugeMetricFamily(
            "newsletter_in_doubt_recipients",
            "Recipients whose batch was posted and its answer lost",
            value=deliveries.get(DeliveryStatus.IN_DOUBT.value, 0),
        )
        yield GaugeMetricFamily(
            "newsletter_in_doubt_batches",
            "Batches posted whose answer was lost",
            value=batches.get(BatchStatus.IN_DOUBT.value, 0),
        )
        yield CounterMetricFamily(
            "newsletter_batch_retries",
            "Extra attempts of send batches (attempts beyond the first), all issues",
            value=retries or 0,
        )
        webhook = CounterMetricFamily(
            "newsletter_webhook_events", "Provider events received, by type", labels=["type"]
        )
        for kind, count in events:
            webhook.add_metric([kind], count)
        yield webhook
        subs = GaugeMetricFamily(
            "newsletter_subscriptions",
            "Subscriptions by list and status",
            labels=["list", "status"],
        )
        for slug, status, count in subscriptions:
            subs.add_metric([slug, status], count)
        yield subs
        state = GaugeMetricFamily(
            "newsletter_last_issue_state",
            "1 for the state the newest issue of each list is in, 0 for the others",
            labels=["list", "date", "state"],
        )
        for slug, day, current in last_issues:
            for candidate in IssueStatus:
                state.add_metric(
                    [slug, day.isoformat(), candidate.value], float(candidate == current)
                )
        yield state


class _Sending(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from instruments.REGISTRY.collect()


def make_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(runtime))
    registry.register(_Sending())
    return registry


def _allowed(runtime: Runtime, header: str) -> bool:
    scheme, _, value = header.partition(" ")
    offered = value.strip() if scheme.lower() == "bearer" else ""
    if not offered:
        return False
    expected = runtime.settings.metrics_token
    if expected is not None and secrets.compare_digest(
        offered.encode("utf-8"), expected.reveal().encode("utf-8")
    ):
        return True
    try:
        with transaction(runtime.sessions) as session:
            authenticate(session, runtime.clock, offered).require(Permission.READ)
    except (AuthenticationError, PermissionDeniedError):
        return False
    return True


def metrics_endpoint(runtime: Runtime) -> Any:
    registry = make_registry(runtime)

    async def metrics(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if not await run_in_threadpool(_allowed, runtime, header):
            return problem(
                401,
                "metrics need a bearer token: NEWSLETTER_METRICS_TOKEN or an API token",
                headers={"WWW-Authenticate": 'Bearer realm="newsletter metrics"'},
            )
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
