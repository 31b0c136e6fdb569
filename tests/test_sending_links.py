"""The sender signs a batch's links with `LinkSigner.links_for_list`: exactly `links`."""

from __future__ import annotations

import hashlib

import pytest
from itsdangerous import Signer

from newsletter.config import Secret, load_settings
from subscribers.tokens import LINK_SALT, LinkSigner


@pytest.mark.parametrize("base_url", ["https://news.example.com", "https://x.example/news"])
@pytest.mark.parametrize("keys", [("n" * 32,), ("n" * 32, "o" * 32), ("k" * 200,)])
def test_links_for_a_list_are_the_links_of_each_subscriber(
    base_url: str, keys: tuple[str, ...]
) -> None:
    settings = load_settings(
        {}, create_secret=False, secret_keys=tuple(Secret(k) for k in keys), base_url=base_url
    )
    signer = LinkSigner(settings)
    reference = Signer(list(reversed(keys)), salt=LINK_SALT, digest_method=hashlib.sha256)
    for list_id in (1, 2, 255, 70_000):
        links = signer.links_for_list(list_id)
        for subscriber_id in (0, 1, 15, 16, 4095, 123_456, 10**12):
            unsubscribe, preferences = links(subscriber_id)
            assert (unsubscribe, preferences) == signer.links(subscriber_id, list_id)
            token = reference.sign(f"{subscriber_id:x}.{list_id:x}").decode("ascii")
            assert unsubscribe == f"{base_url}/u/{token}"
            assert preferences == f"{base_url}/p/{token}"
            assert signer.verify(token).subscriber_id == subscriber_id
