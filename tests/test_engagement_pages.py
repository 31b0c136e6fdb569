"""Engagement on the desk's statistics page, /admin/issues/{id} and the HTTP API: the per-article
table and bar chart, the trend, the open reliability note, CSV; in Japanese and English."""

from __future__ import annotations

import csv
import io
import re

import pytest
from starlette.testclient import TestClient

from newsletter.accounts import tokens
from newsletter.accounts.actors import cli_actor
from newsletter.db.session import transaction
from newsletter.runtime import Runtime
from newsletter.web.chart import bars_chart_svg
from tests.desk_support import make_user, sign_in
from tests.engagement_support import Scene, standard_scene
from tests.fixtures.web import PREVIEW_TOKEN


@pytest.fixture
def scene(web_runtime: Runtime) -> Scene:
    return standard_scene(web_runtime.sessions)


@pytest.fixture
def viewer(web_client: TestClient, web_runtime: Runtime) -> TestClient:
    make_user(web_runtime, "viewer@example.com", "viewer")
    sign_in(web_client, "viewer@example.com")
    return web_client


@pytest.fixture
def api_token(web_runtime: Runtime) -> str:
    with transaction(web_runtime.sessions) as session:
        created = tokens.create_token(
            session, web_runtime.clock, cli_actor(), name="reader", role="viewer"
        )
    return created.secret


def _svg(page: str) -> str:
    match = re.search(r'<svg class="chart bars".*?</svg>', page, re.S)
    assert match, "no bar chart on the page"
    return match.group(0)


def test_the_chart_has_one_labelled_bar_per_article(viewer: TestClient, scene: Scene) -> None:
    page = viewer.get(f"/desk/issues/{scene.issue_id}/stats?hl=en").text
    svg = _svg(page)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert svg.count('<g class="bar">') == 3
    labels = re.findall(r'text-anchor="end" font-size="12">([^<]*)</text>', svg)
    assert labels == ["1. The next model arrives", "2. AI chip supply", "3. A new AI policy"]
    assert "1. The next model arrives: 3; 2. AI chip supply: 1; 3. A new AI policy: 0" in svg


def test_the_desk_table_shows_clicks_by_variant_in_japanese(
    viewer: TestClient, scene: Scene
) -> None:
    page = viewer.get(f"/desk/issues/{scene.issue_id}/stats?hl=ja").text
    assert "記事ごとのクリック" in page and "クリック率" in page
    row = re.search(r"<tr><td>1</td>.*?</tr>", page, re.S)
    assert row is not None
    cells = re.findall(r"<t[dh][^>]*>([^<]*)</t[dh]>", row.group(0))
    assert cells == ["1", "次世代モデルが登場", "4", "3", "30.0%", "3", "1", "0", "0"]
    assert "ピクセルの取得のうち 50.0% は Apple メール" in page
    assert "<script" not in page


def test_the_desk_page_shows_the_trend_and_the_untracked_note_in_english(
    viewer: TestClient, scene: Scene
) -> None:
    page = viewer.get(f"/desk/issues/{scene.issue_id}/stats?hl=en").text
    assert "Last 30 issues" in page
    assert re.search(r"<th scope=\"row\">2026-06-13</th><td>12</td><td>5</td><td>50.0%</td>"
                     r"<td>The next model arrives</td>", page)  # fmt: skip
    assert "2 recipients had tracking off" in page
    assert "known scanners" not in page and "link checks (HEAD) 3" in page


def test_the_desk_csv_is_utf8_with_japanese_titles(viewer: TestClient, scene: Scene) -> None:
    response = viewer.get(f"/desk/issues/{scene.issue_id}/stats.csv?hl=ja")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert [r["title"] for r in rows] == ["次世代モデルが登場", "AI半導体の供給", "AI規制の新方針"]


def test_the_admin_statistics_page_shows_the_engagement_too(
    web_client: TestClient, scene: Scene
) -> None:
    page = web_client.get(f"/admin/issues/{scene.issue_id}?token={PREVIEW_TOKEN}&hl=en").text
    assert "Reader engagement" in page and _svg(page).count('<g class="bar">') == 3


def test_the_api_gives_the_clis_numbers_to_a_viewer(
    web_client: TestClient, scene: Scene, api_token: str
) -> None:
    headers = {"Authorization": f"Bearer {api_token}"}
    data = web_client.get(
        "/api/v1/issues/daily:2026-06-13/engagement?lang=ja", headers=headers
    ).json()
    assert (data["reader_clicks"], data["unique_clickers"], data["ctr"]) == (6, 5, 0.5)
    assert data["articles"][0]["title"] == "次世代モデルが登場"
    assert data["opens"]["apple_mpp"] == 2
    trends = web_client.get("/api/v1/lists/daily/engagement-trends", headers=headers).json()
    assert [t["unique_clickers"] for t in trends["issues"]] == [5]


def test_the_api_csv_round_trips_japanese_titles(
    web_client: TestClient, scene: Scene, api_token: str
) -> None:
    response = web_client.get(
        f"/api/v1/issues/{scene.issue_id}/engagement.csv?lang=ja",
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))
    assert rows[0]["title"] == "次世代モデルが登場" and rows[0]["clicks_ja"] == "3"


def test_the_api_refuses_an_unknown_language_naming_the_field(
    web_client: TestClient, scene: Scene, api_token: str
) -> None:
    response = web_client.get(
        f"/api/v1/issues/{scene.issue_id}/engagement?lang=fr",
        headers={"Authorization": f"Bearer {api_token}"},
    )
    assert response.status_code == 422
    assert "lang" in response.text


def test_a_chart_label_is_escaped() -> None:
    svg = bars_chart_svg([("<b>AI</b> & you", 2)], title="t", description="<d>")
    assert "<b>" not in svg and "&lt;b&gt;AI&lt;/b&gt; &amp; you" in svg and "&lt;d&gt;" in svg
