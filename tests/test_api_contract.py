"""The published contract: the OpenAPI 3.1 document validates, the reference page is made from
it, Schemathesis finds nothing against a live `newsletter serve`, and a whole day runs over
the API alone (`scripts/api_day.py`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.testclient import TestClient

from newsletter.accounts import tokens
from newsletter.accounts.actors import cli_actor
from newsletter.api import create_api
from newsletter.config import Secret, load_settings
from newsletter.db.session import transaction
from newsletter.issues.assembly import build_issue
from newsletter.runtime import Runtime
from newsletter.web import create_app
from subscribers import service
from tests.fixtures.articles import article_dict, store_articles
from tests.fixtures.web import serve_process

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def runtime(tmp_path: Path, sqlite_url: str) -> Iterator[Runtime]:
    settings = load_settings(
        {},
        database_url=sqlite_url,
        var_dir=tmp_path / "var",
        outbox_dir=tmp_path / "outbox",
        secret_keys=(Secret(SECRET),),
    )
    opened = Runtime.open(settings, migrate=True)
    yield opened
    opened.close()


def test_the_openapi_document_is_valid_openapi_3_1(runtime: Runtime) -> None:
    document = create_api(runtime).openapi()
    validate(document)  # openapi-spec-validator: raises on any error
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api/v1"}]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) >= 40
    for operation in operations:
        assert operation["security"] == [{"HTTPBearer": []}]
        problem = operation["responses"]["422"]["content"]["application/problem+json"]
        assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_the_served_document_and_reference_page_are_the_same_contract(runtime: Runtime) -> None:
    with TestClient(create_app(runtime)) as client:
        served = client.get("/api/v1/openapi.json")
        page = client.get("/api/docs")
    assert served.status_code == 200 and served.json() == create_api(runtime).openapi()
    assert page.status_code == 200
    assert "script" not in page.headers["content-security-policy"]
    assert "<script" not in page.text
    for path in served.json()["paths"]:
        assert path.replace("{", "{").replace("&", "&amp;") in page.text
    assert 'id="problem-not-found"' in page.text


# --- against a live server ------------------------------------------------------------------


@dataclass
class Served:
    base_url: str
    token: str
    runtime: Runtime


@pytest.fixture
def served(tmp_path: Path, runtime: Runtime) -> Iterator[Served]:
    with transaction(runtime.sessions) as session:
        token = tokens.create_token(
            session, runtime.clock, cli_actor(), name="contract", role="admin"
        ).secret
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
        "NEWSLETTER_SECRET_KEY": SECRET,
        "NEWSLETTER_VAR_DIR": str(tmp_path / "var"),
        "NEWSLETTER_OUTBOX_DIR": str(tmp_path / "outbox"),
        "NEWSLETTER_PROVIDER": "outbox",
        "NEWSLETTER_WORKERS": "inline",
        "NEWSLETTER_API_RATE_LIMIT": "100000",
        "NEWSLETTER_CONFIG": "",
    }
    with serve_process(env) as (server, base):
        yield Served(base, token, runtime)
    errors = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in errors, errors


def _seed(runtime: Runtime) -> None:
    """Something for the schema's examples to find: articles, a subscriber, a built issue."""
    store_articles(
        runtime.sessions,
        runtime.clock,
        [
            article_dict("alpha", "2026-06-13T05:00:00+09:00", importance=90),
            article_dict("beta", "2026-06-13T04:00:00+09:00", importance=60),
        ],
    )
    with transaction(runtime.sessions) as session:
        service.add_subscriber(
            session, runtime.settings, runtime.clock, email="hanako@example.jp", language="both"
        )
        from datetime import date

        build_issue(session, runtime.settings, runtime.clock, issue_date=date(2026, 6, 13))


@pytest.mark.slow
def test_schemathesis_finds_nothing_against_a_live_server(served: Served, tmp_path: Path) -> None:
    """No 5xx, no answer outside the schema, no invalid request accepted: a few hundred
    generated requests, bounded and seeded so a failure replays."""
    _seed(served.runtime)
    report = tmp_path / "schemathesis.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run",
            f"{served.base_url}/api/v1/openapi.json",
            "--url", f"{served.base_url}/api/v1",
            "-H", f"Authorization: Bearer {served.token}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance,negative_data_rejection",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "3",
            "--seed", "20260613",
            "--no-shrink",
            "--workers", "1",  # CPython 3.11.7 ast.parse is not thread-safe in hypothesis
            "--request-timeout", "30",
            "--report", "json", "--report-json-path", str(report),
        ],
        capture_output=True,
        cwd=tmp_path,  # its cache folder (.schemathesis/) stays out of the work tree
        text=True,
        timeout=240,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output[-2000:]
    assert 100 <= int(generated.group(1)) <= 3000, output[-2000:]
    print(output[-700:])


@pytest.mark.slow
def test_a_whole_day_over_the_api_alone(served: Served) -> None:
    day = [sys.executable, str(ROOT / "scripts" / "api_day.py"), "--base-url", served.base_url]
    started = datetime.now(UTC).isoformat()
    result = subprocess.run(
        [*day, "--run-id", "day-1", "--published-before", started],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NEWSLETTER_API_TOKEN": served.token},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["articles"]["imported"] == 9 and summary["articles"]["rejected"] == 0
    assert summary["subscribers"]["imported"] == 26
    assert len(summary["issue"]["articles"]) == 8
    assert summary["send"]["status"] == "sent"
    assert summary["send"]["recipients"]["accepted"] == 27 == summary["stats"]["ledger_total"]
    outbox = served.runtime.settings.outbox_dir
    assert len(list(outbox.rglob("*.eml"))) == 27
    again = subprocess.run(
        [*day, "--run-id", "day-1", "--published-before", started],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "NEWSLETTER_API_TOKEN": served.token},
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout) == summary  # the same keys: every POST answered again
    assert len(list(outbox.rglob("*.eml"))) == 27  # run twice: nobody mailed twice
