"""Ids in paths and forms that no row can have are 404, never a driver overflow (500)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from newsletter.db.models import Subscription
from newsletter.runtime import Runtime
from subscribers.tokens import LinkSigner
from tests.fixtures.web import PREVIEW_TOKEN, Seeded

BEARER = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}
OUT_OF_RANGE = ["2147483648", "9223372036854775808", "99999999999999999999", "1" + "0" * 400]


@pytest.mark.parametrize("issue_id", OUT_OF_RANGE)
@pytest.mark.parametrize("template", ["/preview/{}", "/preview/{}/ja", "/admin/issues/{}"])
def test_an_out_of_range_issue_id_is_404(
    web_client: TestClient, web_seed: Seeded, template: str, issue_id: str
) -> None:
    response = web_client.get(template.format(issue_id), headers=BEARER)
    assert response.status_code == 404


def test_an_out_of_range_list_id_in_the_preferences_form_is_404_and_changes_nothing(
    web_client: TestClient, web_runtime: Runtime, web_seed: Seeded
) -> None:
    path = f"/p/{LinkSigner(web_runtime.settings).token(web_seed.subscriber_id, web_seed.list_id)}"
    match = re.search(r'name="csrf" value="([^"]+)"', web_client.get(path).text)
    assert match
    data = {"csrf": match.group(1), "language": "en", "lists": ["99999999999999999999"]}
    assert web_client.post(path, data=data).status_code == 404
    with web_runtime.sessions() as session:
        assert session.scalars(select(Subscription.status)).all() == ["active"]
