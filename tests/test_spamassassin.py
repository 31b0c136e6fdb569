"""Every variant of a realistic issue, as the outbox and SMTP write it, scored by SpamAssassin.

SpamAssassin with its packaged rules, local tests only (`-L`: no DNS blocklists, so the score
is the content's and the headers'): every variant scores at most 0, and none fires
`HTML_FONT_LOW_CONTRAST` (hidden or low-contrast text, which the preheader must not use).
Skipped where SpamAssassin is not installed; CI installs Debian's `spamassassin`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from newsletter.providers.base import Batch
from newsletter.providers.outbox import OutboxProvider
from newsletter.render.renderer import render_issue_variants
from newsletter.render.view import issue_view_from_dicts
from newsletter.types import VARIANTS
from tests.conftest import service_unavailable
from tests.fixtures.providers import make_message, make_recipient, provider_settings
from tests.fixtures.render import ISSUE_DATE, make_article

pytestmark = pytest.mark.slow

_STATUS = re.compile(
    r"^X-Spam-Status: \w+, score=(?P<score>-?[\d.]+) .*?tests=(?P<tests>.*?)\s+autolearn=",
    re.M | re.S,
)


def _eml_files(tmp_path: Path) -> dict[str, Path]:
    settings = provider_settings(tmp_path)
    view = issue_view_from_dicts(
        1,
        ISSUE_DATE,
        [make_article(n) for n in range(1, 9)],
        note_ja="本日は特集号です。詳細は https://news.example.com/special をご覧ください。",
        note_en="A special edition today: https://news.example.com/special",
    )
    outbox = OutboxProvider(tmp_path / "outbox")
    files = {}
    for n, (name, rendered) in enumerate(render_issue_variants(view, settings).items(), 1):
        message = make_message(
            issue_id=n, variant=name, subject=rendered.subject, html=rendered.html,
            text=rendered.text,
        )  # fmt: skip
        recipient = make_recipient(1)
        outbox.send_batch(Batch(batch_id=n, message=message, recipients=[recipient]))
        files[name] = outbox.path_for(message, recipient)
    return files


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[float, set[str]]]:
    spamassassin = shutil.which("spamassassin")
    if spamassassin is None:
        service_unavailable("spamassassin is not installed (apt-get install spamassassin)")
    files = _eml_files(tmp_path_factory.mktemp("spam"))
    runs = {
        name: subprocess.Popen(
            [spamassassin, "-L", "-t"],
            stdin=path.open("rb"),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for name, path in files.items()
    }
    out = {}
    for name, run in runs.items():
        stdout, _ = run.communicate(timeout=120)
        found = _STATUS.search(stdout.decode("utf-8", "replace"))
        assert found, f"{name}: no X-Spam-Status in SpamAssassin's output"
        tests = {t.strip() for t in re.split(r"[,\s]+", found["tests"]) if t.strip()}
        out[name] = (float(found["score"]), tests)
    return out


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_scores_at_most_zero(
    scores: dict[str, tuple[float, set[str]]], variant: str
) -> None:
    score, tests = scores[variant]
    assert score <= 0, f"{variant}: {score} ({', '.join(sorted(tests))})"


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_variant_has_low_contrast_text(
    scores: dict[str, tuple[float, set[str]]], variant: str
) -> None:
    assert "HTML_FONT_LOW_CONTRAST" not in scores[variant][1]
