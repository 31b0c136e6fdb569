"""What only a sending process can observe, for Prometheus: provider latency and retries.

Counts that the ledger holds (recipients by outcome, batches, in doubt) are read from the
database at scrape time instead, so they are right whichever process sent. These live in
their own registry, exposed by the process that sends (`newsletter serve` when it sends an
issue started from the API or the desk).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

PROVIDER_SECONDS = Histogram(
    "newsletter_provider_request_seconds",
    "Time one provider request (a batch) took, by provider and outcome",
    ["provider", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RETRIES = Counter(
    "newsletter_provider_retries",
    "Batches queued again after a transient provider error, by provider",
    ["provider"],
    registry=REGISTRY,
)
