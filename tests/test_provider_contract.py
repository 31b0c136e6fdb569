"""One contract for every provider: the same batch in, every recipient accounted for once.

Run over the outbox, the local SendGrid-compatible server and the aiosmtpd sink, each built by
`make_provider` from settings exactly as the sending core builds it, and over the in-memory
provider the sending core's tests use, so what those tests prove holds for the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter.config import Secret
from newsletter.errors import ConfigError
from newsletter.providers.base import Batch, BatchRejected, BatchTooLarge, Provider
from newsletter.providers.factory import make_provider
from newsletter.testing.memory_provider import MemoryProvider
from tests.fixtures.providers import (
    SENDGRID_TEST_KEY,
    make_batch,
    make_message,
    make_recipient,
    provider_settings,
)


@pytest.fixture(params=["outbox", "sendgrid", "smtp", "memory"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    kind = request.param
    if kind == "memory":
        memory = MemoryProvider()
        yield memory
        memory.close()
        return
    if kind == "outbox":
        settings = provider_settings(tmp_path, provider="outbox")
    elif kind == "sendgrid":
        server = request.getfixturevalue("sendgrid_server")
        settings = provider_settings(
            tmp_path,
            provider="sendgrid",
            sendgrid_host=server.url,
            sendgrid_api_key=Secret(SENDGRID_TEST_KEY),
        )
    else:
        sink = request.getfixturevalue("smtp_sink")
        settings = provider_settings(tmp_path, provider="smtp", smtp_url=Secret(sink.url))
    built = make_provider(settings)
    yield built
    built.close()


def test_it_satisfies_the_protocol(provider):
    assert isinstance(provider, Provider)
    assert provider.name in ("outbox", "sendgrid", "smtp", "memory")
    assert 1 <= provider.max_batch_size <= 1000


def test_every_recipient_is_accepted_exactly_once(provider):
    batch = make_batch(25)
    result = provider.send_batch(batch)
    assert sorted(result.accepted) == [r.delivery_id for r in batch.recipients]
    assert not result.failed and not result.deferred
    assert result.requests >= 1


def test_a_bad_address_fails_alone_and_the_rest_are_accepted(provider):
    recipients = [make_recipient(1), make_recipient(2, email="no at sign"), make_recipient(3)]
    result = provider.send_batch(Batch(7, make_message(), recipients))
    assert sorted(result.accepted) == [1001, 1003]
    assert list(result.failed) == [1002]


def test_outcomes_partition_the_batch(provider):
    batch = make_batch(10)
    result = provider.send_batch(batch)
    seen = [*result.accepted, *result.failed, *result.deferred]
    assert sorted(seen) == sorted(r.delivery_id for r in batch.recipients)


def test_a_batch_over_the_limit_is_refused_whole_or_sent_whole(provider):
    """Never a silent part: either splittable (the core halves it) or every recipient sent."""
    batch = make_batch(provider.max_batch_size + 1)
    try:
        result = provider.send_batch(batch)
    except BatchRejected as err:
        assert err.splittable
        return
    assert len(result.accepted) == len(batch.recipients)


def test_close_is_idempotent(provider):
    provider.send_batch(make_batch(1))
    provider.close()
    provider.close()


def test_the_factory_refuses_an_unknown_provider(tmp_path):
    settings = provider_settings(tmp_path)
    object.__setattr__(settings, "provider", "carrier-pigeon")
    with pytest.raises(ConfigError, match="NEWSLETTER_PROVIDER"):
        make_provider(settings)


def test_the_memory_provider_honours_its_batch_size_like_sendgrid():
    memory = MemoryProvider(max_batch_size=3)
    with pytest.raises(BatchTooLarge):
        memory.send_batch(make_batch(4))
    assert not memory.delivered
    assert len(memory.send_batch(make_batch(3)).accepted) == 3
