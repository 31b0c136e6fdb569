"""Tracked links in the email: the tracked form of each variant, the link registry behind
`/c/TOKEN/N`, the open pixel, and what readers receive over the outbox, SMTP and SendGrid.

Rendering tests are pure; the stored forms and the sends run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import email
import re
from dataclasses import replace
from email.message import Message
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.clock import FixedClock
from newsletter.config import Secret, Settings, load_settings
from newsletter.db.models import (
    Article,
    Delivery,
    Issue,
    IssueArticle,
    IssueLink,
    IssueVariant,
    MailingList,
    Subscriber,
)
from newsletter.delivery.planning import enqueue_issue
from newsletter.delivery.sendconfig import SendConfig
from newsletter.delivery.sending import send_issue
from newsletter.engagement.tokens import TrackingSigner
from newsletter.issues.variants import ensure_variants, tracked_forms
from newsletter.providers.base import Batch
from newsletter.providers.outbox import OutboxProvider
from newsletter.providers.sendgrid import SendGridProvider, build_payload
from newsletter.providers.smtp import SmtpProvider, parse_smtp_url
from newsletter.render.budget import (
    GMAIL_CLIP_BYTES,
    REALISTIC_TRACKING_TOKEN,
    transmitted_size,
)
from newsletter.render.links import add_utm
from newsletter.render.renderer import IssueForms, render_issue_forms, render_variant_forms
from newsletter.render.view import IssueView, issue_view_from_dicts
from newsletter.testing.sendgrid_server import SendGridServer
from newsletter.types import (
    SLOT_PREFERENCES_URL,
    SLOT_TRACKING_TOKEN,
    SLOT_UNSUBSCRIBE_URL,
    VARIANTS,
    IssueStatus,
)
from newsletter.web.editor import stored_variants
from tests.fixtures.delivery import add_subscribers
from tests.fixtures.providers import SENDGRID_TEST_KEY, make_message, make_recipient
from tests.fixtures.render import ISSUE_DATE, make_article, store_issue

BASE = "https://news.example.com"
TRACKED = re.compile(rf"^{re.escape(BASE)}/c/{re.escape(SLOT_TRACKING_TOKEN)}/(\d+)$")
HREF = re.compile(r'href="([^"]*)"')
FAST = SendConfig(batch_size=4, concurrency=1, backoff_base_s=0.01, backoff_max_s=0.02, poll_s=0.01)
UTM = "utm_source=newsletter&utm_medium=email"


def _articles() -> list[dict[str, Any]]:
    """Like the demo: bilingual articles, one English-only, one Japanese-only."""
    return [
        make_article(1),
        make_article(2),
        make_article(3, languages=("en",)),
        make_article(4, languages=("ja",)),
    ]


def _view(**tracking: bool) -> IssueView:
    view = issue_view_from_dicts(7, ISSUE_DATE, _articles(), list_name="AI日報", utm_params=UTM)
    return replace(view, **tracking)


def _hrefs(html: str) -> list[str]:
    return [unescape(h) for h in HREF.findall(html)]


def _footer(variant: str) -> set[str]:
    web = f"{BASE}/issues/{ISSUE_DATE.isoformat()}?lang={variant}"
    return {SLOT_UNSUBSCRIBE_URL, SLOT_PREFERENCES_URL, web}


def _content_urls(article: dict[str, Any]) -> set[str]:
    """Every URL of an article the email links to (the article's own with the UTM)."""
    urls = {add_utm(article["url"], UTM), article["source_url"]}
    for content in article["content"].values():
        urls |= {r["url"] for r in content["related"]}
    return urls


# --- rendering (pure) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pure_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("render")
    return load_settings(
        {},
        database_url=f"sqlite:///{folder / 'unused.db'}",
        var_dir=folder / "var",
        outbox_dir=folder / "outbox",
        secret_keys=(Secret("test-secret-key-0123456789abcdef"),),
        base_url=BASE,
    )


@pytest.fixture(scope="module")
def click_forms(pure_settings: Settings) -> IssueForms:
    """The demo-like issue of a list with click tracking, rendered once for these tests."""
    return render_issue_forms(_view(click_tracking=True), pure_settings)


def test_every_content_link_of_the_tracked_form_goes_through_c(click_forms: IssueForms) -> None:
    forms = click_forms
    content = set().union(*(_content_urls(a) for a in _articles()))
    for variant in VARIANTS:
        html, text = forms.tracked[variant].html, forms.tracked[variant].text
        hrefs = {h for h in _hrefs(html) if not h.startswith("#")}
        assert {h for h in hrefs if not TRACKED.match(h)} == _footer(variant)
        assert not content & {*hrefs, *text.split()}
        listed = re.findall(r"^\[\d+\] (\S+)$", text, re.M)
        assert listed and all(TRACKED.match(url) for url in listed)
        for footer_link in _footer(variant):
            assert footer_link in text  # never wrapped in the text part either


def test_each_link_number_leads_to_the_url_the_direct_form_links(click_forms: IssueForms) -> None:
    forms = click_forms
    by_number = {link.link_no: link for link in forms.links}
    for variant in VARIANTS:
        tracked = _hrefs(forms.tracked[variant].html)
        direct = _hrefs(forms.direct[variant].html)
        assert len(tracked) == len(direct)
        for tracked_href, direct_href in zip(tracked, direct, strict=True):
            match = TRACKED.match(tracked_href)
            if match:
                link = by_number[int(match.group(1))]
                assert (link.url, link.variant) == (direct_href, variant)
            else:
                assert tracked_href == direct_href


def test_links_carry_their_article_kind_and_place_in_the_issue(click_forms: IssueForms) -> None:
    ja = [link for link in click_forms.links if link.variant == "ja"]
    second = [(link.kind, link.url) for link in ja if link.position == 2]
    assert second == [
        ("article", f"https://ainippo.example/articles/2?{UTM}"),
        ("source", "https://publisher.example/news/2?ref=feed"),
        ("related", "https://ainippo.example/articles/related-2-1"),
        ("related", "https://ainippo.example/articles/related-2-2"),
    ]
    assert {link.article_key for link in ja if link.position == 2} == {"article-2"}


def test_link_numbers_never_repeat_across_the_variants(click_forms: IssueForms) -> None:
    numbers = [link.link_no for link in click_forms.links]
    assert numbers == list(range(1, len(numbers) + 1))
    assert {link.variant for link in click_forms.links} == set(VARIANTS)


def test_the_direct_form_is_the_untracked_rendering_byte_for_byte(
    pure_settings: Settings, click_forms: IssueForms
) -> None:
    untracked = render_issue_forms(_view(), pure_settings)
    assert click_forms.direct == untracked.direct
    assert untracked.tracked == {} and untracked.links == ()


def test_the_open_pixel_ends_the_tracked_html_of_a_list_with_open_tracking(
    pure_settings: Settings,
) -> None:
    forms = render_issue_forms(_view(open_tracking=True), pure_settings)
    pixel = f'<img src="{BASE}/o/{SLOT_TRACKING_TOKEN}.gif" width="1" height="1" alt=""'
    for variant in VARIANTS:
        html = forms.tracked[variant].html
        assert html.count(pixel) == 1
        assert html.index(pixel) > html.rindex(SLOT_UNSUBSCRIBE_URL)  # after all the content
        assert "/o/" not in forms.tracked[variant].text
        assert "/o/" not in forms.direct[variant].html
    assert forms.links == ()  # opens only: links stay direct


def test_click_tracking_alone_adds_no_pixel(click_forms: IssueForms) -> None:
    assert all("/o/" not in click_forms.tracked[v].html for v in VARIANTS)


def test_the_tracked_form_is_trimmed_like_the_direct_form_and_fits(
    pure_settings: Settings,
) -> None:
    long = [make_article(n, long=True) for n in range(1, 9)]
    view = replace(
        issue_view_from_dicts(7, ISSUE_DATE, long, utm_params=UTM),
        click_tracking=True,
        open_tracking=True,
    )
    forms = render_variant_forms(view, "both", pure_settings)
    assert forms.tracked is not None
    assert forms.direct.trimmed  # the budget had work to do
    assert forms.tracked.trimmed == forms.direct.trimmed
    assert transmitted_size(forms.tracked.html, BASE) <= GMAIL_CLIP_BYTES


def test_the_budget_counts_the_longest_tracking_token(pure_settings: Settings) -> None:
    longest = TrackingSigner(pure_settings).token(2**63 - 1)
    assert len(REALISTIC_TRACKING_TOKEN) >= len(longest)


# --- stored forms and the link registry (SQLite and PostgreSQL) ------------------------------


def _store(session: Session, clock: FixedClock, articles: int = 3, **tracking: bool) -> Issue:
    """The first `articles` of the demo-like issue, built, on a list with the UTM and
    `tracking` settings given."""
    issue = store_issue(session, _articles()[:articles], built_at=clock.now())
    session.execute(
        update(MailingList)
        .where(MailingList.id == issue.list_id)
        .values(utm_params=UTM, **tracking)
    )
    return issue


def test_issue_links_map_each_number_to_the_article_url_kind_and_position(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = _store(session, clock, click_tracking=True)
        ensure_variants(session, issue, settings, clock)
        ids = dict(session.execute(select(Article.external_id, Article.id)).all())
    with sessions() as session:
        rows = session.scalars(
            select(IssueLink).where(IssueLink.variant == "en", IssueLink.position == 3)
        ).all()
        tracked_en = tracked_forms(session, issue.id)["en"].html
    assert [(r.kind, r.url, r.article_id) for r in rows] == [
        ("article", f"https://ainippo.example/articles/3?{UTM}", ids["article-3"]),
        ("source", "https://publisher.example/news/3?ref=feed", ids["article-3"]),
        ("related", "https://ainippo.example/articles/related-3-1", ids["article-3"]),
        ("related", "https://ainippo.example/articles/related-3-2", ids["article-3"]),
    ]
    for row in rows:
        assert f'href="{BASE}/c/{SLOT_TRACKING_TOKEN}/{row.link_no}"' in tracked_en


def test_a_list_that_tracks_stores_both_forms_of_every_variant(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = _store(session, clock, articles=1, click_tracking=True)
        direct = ensure_variants(session, issue, settings, clock)
        assert all(not row.tracked and "/c/" not in row.html for row in direct.values())
    with sessions() as session:
        forms = session.execute(select(IssueVariant.variant, IssueVariant.tracked)).all()
    assert sorted(forms) == sorted((v, t) for v in VARIANTS for t in (False, True))


def test_a_rebuild_replaces_the_issue_links(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = _store(session, clock, articles=2, click_tracking=True)
        ensure_variants(session, issue, settings, clock)
    clock.advance(minutes=10)
    with sessions.begin() as session:
        issue = session.get_one(Issue, issue.id)
        first = session.scalar(select(Article.id).where(Article.external_id == "article-1"))
        session.query(IssueArticle).filter(IssueArticle.article_id != first).delete()
        issue.built_at = clock.now()
        ensure_variants(session, issue, settings, clock)
    with sessions() as session:
        links = session.scalars(select(IssueLink)).all()
        htmls = [row.html for row in tracked_forms(session, issue.id).values()]
    assert {link.position for link in links} == {1}
    assert {link.article_id for link in links} == {first}
    assert sorted(link.link_no for link in links) == list(range(1, len(links) + 1))
    for link in links:  # every stored number is in the email, and only those
        assert any(f'/c/{SLOT_TRACKING_TOKEN}/{link.link_no}"' in html for html in htmls)
    assert not any(f'/c/{SLOT_TRACKING_TOKEN}/{len(links) + 1}"' in html for html in htmls)


def test_previews_the_desk_and_the_archive_never_show_tracked_links(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    from newsletter.web.archive import _archived_variant

    with sessions.begin() as session:
        issue = _store(session, clock, articles=1, click_tracking=True, open_tracking=True)
        previews = ensure_variants(session, issue, settings, clock)
        desk = stored_variants(session, issue, settings, clock)
        issue.status = IssueStatus.SENT
    with sessions() as session:
        archive = [_archived_variant(session, ISSUE_DATE, "daily", v) for v in VARIANTS]
    shown = [r.html + r.text for r in [*previews.values(), *desk]] + archive
    assert len(shown) == 3 * len(VARIANTS)
    assert not any("/c/" in page or "/o/" in page or SLOT_TRACKING_TOKEN in page for page in shown)


def test_a_list_that_starts_tracking_during_a_send_does_not_change_it(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = _store(session, clock, articles=1)
        ensure_variants(session, issue, settings, clock)
        issue.status = IssueStatus.SENDING
        session.execute(update(MailingList).values(click_tracking=True))
    with sessions.begin() as session:
        ensure_variants(session, session.get_one(Issue, issue.id), settings, clock)
    with sessions() as session:
        assert tracked_forms(session, issue.id) == {}
        assert session.scalars(select(IssueLink)).all() == []


def test_readers_planned_after_tracking_was_switched_on_mid_send_get_the_direct_form(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> None:
    with sessions.begin() as session:
        issue = _store(session, clock, articles=1)
        add_subscribers(session, issue.list_id, 0, 2)
        enqueue_issue(session, issue, settings, clock, batch_size=4)  # the send starts
        session.execute(update(MailingList).values(click_tracking=True))
        add_subscribers(session, issue.list_id, 2, 2)
        report = enqueue_issue(session, issue, settings, clock, batch_size=4)
    with sessions() as session:
        forms = session.scalars(select(Delivery.tracked)).all()
    assert report.total == 4 and forms == [False] * 4


# --- what readers receive ---------------------------------------------------------------------


def _seed_tracking_list(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock
) -> tuple[int, list[str], str]:
    """A click-tracking list, a built issue and three subscribers (ja, en, both): the third
    switched tracking off. Japanese and English HTML travel in different transfer encodings."""
    with sessions.begin() as session:
        issue = _store(session, clock, articles=1, click_tracking=True)
        *tracked_readers, opted_out = add_subscribers(session, issue.list_id, 0, 3)
        session.execute(
            update(Subscriber).where(Subscriber.email == opted_out).values(tracking_off=True)
        )
        enqueue_issue(session, issue, settings, clock, batch_size=4)
        return issue.id, tracked_readers, opted_out


def _parts(message: Message) -> tuple[str, str]:
    """The decoded HTML and text parts of a received email."""
    parts = {p.get_content_type(): p for p in message.walk() if not p.is_multipart()}
    html = parts["text/html"].get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    text = parts["text/plain"].get_payload(decode=True).decode("utf-8")  # type: ignore[union-attr]
    return html, text


CLICK = re.compile(rf"{re.escape(BASE)}/c/([^/\s\"]+)/(\d+)")
FIRST_ARTICLE = f"https://ainippo.example/articles/1?{UTM}"


def _check_received(
    sessions: sessionmaker[Session],
    settings: Settings,
    received: dict[str, Message],
    tracked_readers: list[str],
    opted_out: str,
) -> None:
    """Each tracked reader's links carry a token of their own delivery and a number that leads
    to the issue's URL; the opted-out reader's email links straight to the article."""
    with sessions() as session:
        deliveries = dict(
            session.execute(
                select(Subscriber.email, Delivery.id).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        links = {r.link_no: r.url for r in session.scalars(select(IssueLink))}
    signer = TrackingSigner(settings)
    for reader in tracked_readers:
        html, text = _parts(received[reader])
        for part in (html, text):
            clicks = CLICK.findall(part)
            assert clicks, reader
            assert {signer.verify(token) for token, _ in clicks} == {deliveries[reader]}
            assert FIRST_ARTICLE in {links[int(number)] for _, number in clicks}
            assert FIRST_ARTICLE not in unescape(part) and SLOT_TRACKING_TOKEN not in part
    html, text = _parts(received[opted_out])
    assert "/c/" not in html + text and "/o/" not in html
    assert FIRST_ARTICLE in _hrefs(html) and FIRST_ARTICLE in text


def test_outbox_readers_get_their_own_tracked_links_or_direct_ones(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, tmp_path: Path
) -> None:
    issue_id, tracked_readers, opted_out = _seed_tracking_list(sessions, settings, clock)
    provider = OutboxProvider(tmp_path / "outbox")
    send_issue(sessions, settings, provider, issue_id, clock, worker_id="t", config=FAST)
    received = {}
    for path in (tmp_path / "outbox").rglob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        received[email.utils.parseaddr(message["To"])[1]] = message
    assert set(received) == {*tracked_readers, opted_out}
    _check_received(sessions, settings, received, tracked_readers, opted_out)


def test_smtp_readers_get_their_own_tracked_links_or_direct_ones(
    sessions: sessionmaker[Session], settings: Settings, clock: FixedClock, smtp_sink: Any
) -> None:
    issue_id, tracked_readers, opted_out = _seed_tracking_list(sessions, settings, clock)
    provider = SmtpProvider(parse_smtp_url(smtp_sink.url, default_pool=1))
    try:
        send_issue(sessions, settings, provider, issue_id, clock, worker_id="t", config=FAST)
    finally:
        provider.close()
    received = {m.rcpt_tos[0]: email.message_from_bytes(m.data) for m in smtp_sink.messages}
    assert set(received) == {*tracked_readers, opted_out}
    _check_received(sessions, settings, received, tracked_readers, opted_out)


@pytest.mark.parametrize("eightbit", [False, True])
@pytest.mark.parametrize("body", ["ascii", "日本語"], ids=["quoted-printable", "base64"])
def test_a_token_many_times_on_one_line_is_filled_everywhere(body: str, eightbit: bool) -> None:
    """The MIME fast paths (QP pieces, base64 prefix, 8bit) fill every occurrence."""
    from newsletter.providers.mime import MimeTemplate

    line = " ".join(f'<a href="{BASE}/c/{SLOT_TRACKING_TOKEN}/{n}">{body}</a>' for n in range(60))
    html = f"<p>{body * 200}</p>{line}<a href='{SLOT_UNSUBSCRIBE_URL}'>u</a>"
    text = f"{body}\n" + "\n".join(f"[{n}] {BASE}/c/{SLOT_TRACKING_TOKEN}/{n}" for n in range(60))
    message = make_message(html=html, text=text, tracked=True)
    token = f"{123456:x}.{'s' * 22}"
    data = MimeTemplate(message).render(make_recipient(1, tracking_token=token), eightbit=eightbit)
    received_html, received_text = _parts(email.message_from_bytes(data))
    for part in (received_html, received_text):
        assert [n for t, n in CLICK.findall(part) if t == token] == [str(n) for n in range(60)]
        assert SLOT_TRACKING_TOKEN not in part


# --- SendGrid ---------------------------------------------------------------------------------

_OFF = {
    "click_tracking": {"enable": False, "enable_text": False},
    "open_tracking": {"enable": False},
}


@pytest.fixture
def sendgrid(sendgrid_server: SendGridServer) -> Any:
    provider = SendGridProvider(Secret(SENDGRID_TEST_KEY), sendgrid_server.url, timeout=5)
    yield provider
    provider.close()


def test_a_tracked_batch_carries_each_readers_token_and_switches_sendgrid_tracking_off(
    sendgrid: SendGridProvider, sendgrid_server: SendGridServer
) -> None:
    message = make_message(html=f'<a href="{BASE}/c/{SLOT_TRACKING_TOKEN}/1">x</a>', tracked=True)
    recipients = [make_recipient(n, tracking_token=f"{1000 + n:x}.{'s' * 22}") for n in (1, 2)]
    result = sendgrid.send_batch(Batch(5, message, recipients))
    assert result.accepted == [1001, 1002]
    (request,) = sendgrid_server.requests
    assert request["tracking_settings"] == _OFF
    tokens = [p["substitutions"][SLOT_TRACKING_TOKEN] for p in request["personalizations"]]
    assert tokens == [f"{1001:x}.{'s' * 22}", f"{1002:x}.{'s' * 22}"]


def test_an_untracked_newsletter_also_switches_sendgrid_tracking_off_and_has_no_token(
    sendgrid: SendGridProvider, sendgrid_server: SendGridServer
) -> None:
    sendgrid.send_batch(Batch(5, make_message(), [make_recipient(1)]))
    (request,) = sendgrid_server.requests
    assert request["tracking_settings"] == _OFF
    assert SLOT_TRACKING_TOKEN not in request["personalizations"][0]["substitutions"]


def test_a_tracked_recipient_without_a_token_is_refused_not_sent_a_broken_link() -> None:
    message = make_message(tracked=True)
    payload = build_payload(
        Batch(5, message, [make_recipient(1)]), [make_recipient(1)], sandbox=False
    )
    assert payload.included == []
    assert "tracking token" in payload.failed[1001]


def test_a_long_token_is_held_to_sendgrids_substitutions_limit() -> None:
    long = make_recipient(1, name="n" * 1500, tracking_token="t" * 9000)
    payload = build_payload(Batch(5, make_message(tracked=True), [long]), [long], sandbox=False)
    assert "substitutions" in payload.failed[1001]


def test_the_stand_in_refuses_tracking_settings_sendgrid_would_refuse(
    sendgrid_server: SendGridServer,
) -> None:
    body = build_payload(
        Batch(5, make_message(), [make_recipient(1)]), [make_recipient(1)], sandbox=False
    ).body
    body["tracking_settings"] = {"click_tracking": {"enable": "no"}, "pixel": {}}
    response = httpx.post(
        f"{sendgrid_server.url}/v3/mail/send",
        json=body,
        headers={"Authorization": f"Bearer {SENDGRID_TEST_KEY}"},
    )
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"tracking_settings.click_tracking.enable", "tracking_settings.pixel"}
