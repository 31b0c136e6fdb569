"""The digest email: structure, escaping, languages, links. Rendered for real with mjml-python."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.render import i18n
from newsletter.render.environment import environment
from newsletter.render.renderer import render_issue_variants, render_mjml, render_variant
from newsletter.render.view import IssueView, issue_view_from_dicts
from newsletter.types import SLOT_PREFERENCES_URL, SLOT_UNSUBSCRIBE_URL, SLOTS, RenderedVariant
from tests.fixtures.render import ISSUE_DATE, make_article

# Every tag of MJML 4 (https://documentation.mjml.io/); mj-attributes children may also name
# any of these as defaults. mjml-python passes an unknown tag through as raw HTML silently.
KNOWN_MJML_TAGS = frozenset(
    [
        "mjml",
        "mj-head",
        "mj-body",
        "mj-attributes",
        "mj-all",
        "mj-class",
        "mj-breakpoint",
        "mj-font",
        "mj-html-attributes",
        "mj-html-attribute",
        "mj-selector",
        "mj-preview",
        "mj-style",
        "mj-title",
        "mj-raw",
        "mj-accordion",
        "mj-accordion-element",
        "mj-accordion-title",
        "mj-accordion-text",
        "mj-button",
        "mj-carousel",
        "mj-carousel-image",
        "mj-column",
        "mj-divider",
        "mj-group",
        "mj-hero",
        "mj-image",
        "mj-navbar",
        "mj-navbar-link",
        "mj-section",
        "mj-social",
        "mj-social-element",
        "mj-spacer",
        "mj-table",
        "mj-text",
        "mj-wrapper",
        "mj-include",
    ]
)

# English labels of the email's chrome (what the reader sees around the articles).
ENGLISH_LABELS = (
    "Today's summary",
    "Key points",
    "Impact analysis",
    "Editor's comment",
    "Related articles",
    "Read more",
    "View original",
    "Unsubscribe",
    "View in browser",
    "Change language or preferences",
    "You are receiving this email",
    "articles today",
)
JAPANESE_LABELS = (
    "今日のまとめ",
    "キーポイント",
    "影響分析",
    "編集コメント",
    "関連記事",
    "続きを読む",
    "原文を表示",
    "配信停止",
    "ブラウザで表示",
    "配信設定",
    "本日の記事",
)


def view_of(*articles: dict[str, Any], **fields: Any) -> IssueView:
    return issue_view_from_dicts(7, ISSUE_DATE, list(articles), **fields)


def visible_text(html: str) -> str:
    """The text a reader sees: no tags, no style/head content, entities decoded."""

    class _Text(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self._skip = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in ("style", "title", "head"):
                self._skip += 1

        def handle_endtag(self, tag: str) -> None:
            if tag in ("style", "title", "head"):
                self._skip -= 1

        def handle_data(self, data: str) -> None:
            if not self._skip:
                self.parts.append(data)

    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def hrefs(html: str) -> list[str]:
    return re.findall(r'href="([^"]*)"', html)


@pytest.fixture
def issue(render_settings: Settings) -> dict[str, RenderedVariant]:
    return render_issue_variants(view_of(*(make_article(n) for n in range(1, 4))), render_settings)


# --- structure ------------------------------------------------------------------------------


def test_templates_use_only_known_mjml_tags(render_settings: Settings) -> None:
    view = view_of(make_article(1), make_article(2, languages=("en",)))
    for variant in ("ja", "en", "both"):
        source = render_mjml(view, variant, render_settings)
        used = set(re.findall(r"</?((?:mj-[a-z-]+)|mjml)\b", source))
        assert used <= KNOWN_MJML_TAGS, used - KNOWN_MJML_TAGS


def test_no_mjml_tag_survives_into_the_html(issue: dict[str, RenderedVariant]) -> None:
    for rendered in issue.values():
        assert "<mj-" not in rendered.html


def test_html_declares_the_variant_language(issue: dict[str, RenderedVariant]) -> None:
    assert '<html lang="ja"' in issue["ja"].html
    assert '<html lang="en"' in issue["en"].html
    assert '<html lang="ja"' in issue["both"].html
    assert 'lang="und"' not in issue["ja"].html


def test_dark_mode_is_declared_in_the_head(issue: dict[str, RenderedVariant]) -> None:
    head = issue["ja"].html.split("</head>")[0]
    assert 'name="color-scheme" content="light dark"' in head
    assert 'name="supported-color-schemes"' in head
    assert "prefers-color-scheme: dark" in head


def test_preheader_is_hidden_text_with_the_next_headlines(
    issue: dict[str, RenderedVariant],
) -> None:
    html = issue["ja"].html
    assert issue["ja"].preheader.startswith("記事2")
    body = html.split("<body", 1)[1]
    match = re.search(r'<div class="nl-preheader" style="(display:none;[^"]*)">記事2', body)
    assert match
    # Hidden by size, opacity and mso-hide, not by a text colour matching the background.
    style = match.group(1)
    assert "mso-hide:all" in style and "max-height:0" in style and "opacity:0" in style
    assert "color" not in style and "font-size" not in style
    assert "color:#ffffff" not in body.split("記事2", 1)[0]


def test_japanese_text_uses_a_japanese_font_stack(issue: dict[str, RenderedVariant]) -> None:
    stack = "Hiragino Sans,Hiragino Kaku Gothic ProN,Noto Sans JP,Meiryo,sans-serif"
    assert stack in issue["ja"].html
    assert stack not in issue["en"].html
    both = issue["both"].html
    assert ".nl-en { font-family:-apple-system" in both  # each English half: class="nl-en"
    assert re.search(r'lang="en" class="nl-o nl-en"', both)


def test_outlook_gets_windows_fonts(issue: dict[str, RenderedVariant]) -> None:
    head = issue["ja"].html.split("</head>")[0]
    assert "<!--[if mso]><style>" in head and "Meiryo, Yu Gothic" in head


def test_the_summary_links_to_each_article_in_the_page(issue: dict[str, RenderedVariant]) -> None:
    html = issue["ja"].html
    for n in (1, 2, 3):
        assert f'href="#article-{n}"' in html
        assert f'id="article-{n}"' in html


def test_footer_has_recipient_slots_web_version_reason_and_postal_address(
    issue: dict[str, RenderedVariant], render_settings: Settings
) -> None:
    for variant, rendered in issue.items():
        links = hrefs(rendered.html)
        assert SLOT_UNSUBSCRIBE_URL in links and SLOT_PREFERENCES_URL in links
        assert f"https://news.example.com/issues/2026-06-13?lang={variant}" in links
        assert render_settings.postal_address in rendered.html
        assert SLOT_UNSUBSCRIBE_URL in rendered.text
        assert f"https://news.example.com/issues/2026-06-13?lang={variant}" in rendered.text
    assert "お申し込み" in issue["ja"].html
    assert "because you subscribed" in issue["en"].html


def test_both_variant_summary_lists_both_headlines(
    issue: dict[str, RenderedVariant],
) -> None:
    summary = issue["both"].html.split('id="article-1"', 1)[0]
    assert "記事1: 新しいAI評価指標が登場" in summary and "Article 1: a new AI benchmark" in summary
    assert "Article 1: a new AI benchmark" not in issue["ja"].html
    toc_entry = "1. 記事1: 新しいAI評価指標が登場\n   Article 1: a new AI benchmark"
    assert toc_entry in issue["both"].text


def test_both_variant_shows_japanese_first_then_english(issue: dict[str, RenderedVariant]) -> None:
    html = issue["both"].html.split('id="article-1"', 1)[1]
    ja, en = (
        html.index("記事1: 新しいAI評価指標が登場"),
        html.index("Article 1: a new AI benchmark"),
    )
    assert ja < en < html.index('id="article-2"')


# --- languages ------------------------------------------------------------------------------


def test_japanese_variant_has_no_english_label(issue: dict[str, RenderedVariant]) -> None:
    seen = visible_text(issue["ja"].html) + issue["ja"].text + issue["ja"].subject
    for label in ENGLISH_LABELS:
        assert label not in seen
    for label in JAPANESE_LABELS:
        assert label in seen


def test_english_variant_has_no_japanese_label(issue: dict[str, RenderedVariant]) -> None:
    seen = visible_text(issue["en"].html) + issue["en"].text + issue["en"].subject
    for label in JAPANESE_LABELS:
        assert label not in seen
    for label in ENGLISH_LABELS:
        assert label in seen


def test_every_template_message_has_a_japanese_translation() -> None:
    env = environment("html", "ja")
    translations = env.globals["label"]  # translates into any language
    functions = ("_", "gettext", "ngettext", "label")
    for name in ("digest/digest.mjml.j2", "digest/digest.txt.j2"):
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        messages = list(env.extract_translations(source, gettext_functions=functions))
        assert messages, name
        for _line, _function, message in messages:
            if isinstance(message, tuple) and len(message) > 1 and message[1]:  # a plural
                plural = i18n.translations("ja").ngettext(message[0], message[1], 2)
                assert plural != message[1], f"{name}: {message[1]!r} untranslated"
                message = message[0]
            for msgid in message if isinstance(message, tuple) else (message,):
                if msgid:
                    assert translations(msgid, "ja") != msgid, f"{name}: {msgid!r} untranslated"


def test_dates_are_localized(issue: dict[str, RenderedVariant]) -> None:
    assert "2026年6月13日" in issue["ja"].html and "2026年6月13日" in issue["ja"].subject
    assert "June 13, 2026" in issue["en"].html and "June 13, 2026" in issue["en"].subject


def test_an_editors_subject_is_one_line_without_slots(render_settings: Settings) -> None:
    view = view_of(make_article(1), subject_ja="朝刊\r\nBcc: x@example.com -unsubscribe_url-")
    assert render_variant(view, "ja", render_settings).subject == "朝刊 Bcc: x@example.com"


def test_an_editors_subject_wins(render_settings: Settings) -> None:
    view = view_of(
        make_article(1), subject_ja="今朝の注目: 評価指標", subject_en="Today: benchmarks"
    )
    assert render_variant(view, "ja", render_settings).subject == "今朝の注目: 評価指標"
    assert render_variant(view, "en", render_settings).subject == "Today: benchmarks"
    both = render_variant(view, "both", render_settings).subject
    assert both == "今朝の注目: 評価指標 / Today: benchmarks"


def test_article_missing_the_language_falls_back_with_a_badge(render_settings: Settings) -> None:
    view = view_of(make_article(1, languages=("en",)), make_article(2, languages=("ja",)))
    ja = render_variant(view, "ja", render_settings)
    en = render_variant(view, "en", render_settings)
    assert "英語のみ" in ja.html and "Article 1: a new AI benchmark" in ja.html
    assert "Japanese only" in en.html and "記事2: 新しいAI評価指標が登場" in en.html
    assert "[英語のみ]" in ja.text and "[Japanese only]" in en.text
    assert "日本語のみ" in render_variant(view, "both", render_settings).html


def test_a_missing_field_shows_no_empty_heading(render_settings: Settings) -> None:
    article = make_article(1)
    for language in ("ja", "en"):
        content = article["content"][language]
        content.update(key_points=[], impact_analysis="", editor_comment=None, related=[])
    article["source_url"] = None
    rendered = render_issue_variants(view_of(article), render_settings)
    for label in ("キーポイント", "影響分析", "編集コメント", "関連記事", "原文を表示"):
        assert label not in rendered["ja"].html and label not in rendered["ja"].text
    for label in ("Key points", "Impact analysis", "Editor's comment", "Related articles"):
        assert label not in rendered["both"].html and label not in rendered["en"].text
    for heading in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", rendered["both"].html):
        assert visible_text(heading).strip()


def test_each_language_shows_only_the_fields_it_has(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["en"].update(key_points=[], impact_analysis="", editor_comment="")
    both = render_variant(view_of(article), "both", render_settings).html
    assert "ポイント1" in both and "Point 1" not in both  # no empty English half
    impact = both.split('class="nl-box"')[1]  # the analysis box, up to the comment's
    assert "影響分析" in impact and 'class="nl-o' not in impact


# --- safety ---------------------------------------------------------------------------------


def test_template_syntax_in_content_prints_literally(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["ja"]["title"] = "{{ 7*7 }} と {% if true %}x{% endif %}"
    rendered = render_issue_variants(view_of(article), render_settings)
    assert "{{ 7*7 }} と {% if true %}x{% endif %}" in visible_text(rendered["ja"].html)
    assert "{{ 7*7 }}" in rendered["ja"].text
    assert "49" not in visible_text(rendered["ja"].html)


def test_html_in_content_is_escaped(render_settings: Settings) -> None:
    article = make_article(1)
    content = article["content"]["en"]
    content["title"] = '<script>alert("x")</script> & <b>bold</b>'
    content["summary"] = "<img src=x onerror=alert(1)>"
    content["key_points"] = [{"heading": "<i>h</i>", "body": "\"quoted\" 'single'"}]
    html = render_variant(view_of(article), "en", render_settings).html
    assert "<script>" not in html and "<img src=x" not in html and "<i>h</i>" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert '<script>alert("x")</script> & <b>bold</b>' in visible_text(html)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "/relative/path",
        'https://ok.example/"onmouseover="x',
    ],
)
def test_only_http_links_are_rendered(render_settings: Settings, url: str) -> None:
    article = make_article(1, url=url, source_url=url)
    article["content"]["ja"]["related"] = [{"title": "関連", "summary": "", "url": url}]
    rendered = render_variant(view_of(article), "ja", render_settings)
    for href in hrefs(rendered.html):
        assert href.startswith(("https://", "http://", "#", "-")), href
    assert "javascript" not in rendered.html.lower().replace("javascript:void", "")
    assert "続きを読む" not in rendered.html  # no button without a safe target
    assert "関連" in rendered.html  # the related title stays, as text


def test_slot_markers_in_content_are_removed(render_settings: Settings) -> None:
    article = make_article(1)
    content = article["content"]["ja"]
    content["title"] = f"タイトル{SLOTS[0]}"
    content["summary"] = "要約 -unsub-unsubscribe_url-scribe_url- 終わり"
    content["editor_comment"] = f"{SLOTS[2]}さん、こんにちは"
    rendered = render_variant(view_of(article), "ja", render_settings)
    body = rendered.html.split('id="article-1"')[1].split(f'href="{SLOT_PREFERENCES_URL}"')[0]
    for slot in SLOTS:
        assert slot not in body
    assert rendered.html.count(SLOT_UNSUBSCRIBE_URL) == 1
    assert rendered.text.count(SLOT_UNSUBSCRIBE_URL) == 1


# --- links ----------------------------------------------------------------------------------


def test_read_more_carries_the_lists_utm_parameters(render_settings: Settings) -> None:
    article = make_article(1, url="https://ainippo.example/a/1?page=2#top")
    rendered = render_variant(view_of(article), "ja", render_settings)
    expected = (
        "https://ainippo.example/a/1?page=2&amp;utm_source=newsletter&amp;utm_medium=email#top"
    )
    assert expected in rendered.html
    assert "https://ainippo.example/a/1?page=2&utm_source=newsletter&utm_medium=email#top" in (
        rendered.text
    )


def test_a_lists_own_utm_parameters_replace_the_setting(render_settings: Settings) -> None:
    view = view_of(make_article(1), utm_params="utm_source=weekly")
    html = render_variant(view, "en", render_settings).html
    assert "https://ainippo.example/articles/1?utm_source=weekly" in html


def test_original_link_names_the_source(issue: dict[str, RenderedVariant]) -> None:
    assert "原文を表示 (Publisher Example)" in visible_text(issue["ja"].html)
    assert 'href="https://publisher.example/news/1?ref=feed"' in issue["ja"].html


def test_the_summary_targets_carry_name_anchors_beside_their_ids(
    issue: dict[str, RenderedVariant],
) -> None:
    """Clients that ignore `id` as a fragment target (older Outlook, some webmail) follow the
    `<a name>` inside the same heading."""
    for variant in ("ja", "en", "both"):
        html = issue[variant].html
        for n in (1, 2, 3):
            assert re.search(rf'<h2 id="article-{n}"[^>]*><a name="article-{n}"></a>', html)


def test_the_newsletter_name_is_the_one_h1(issue: dict[str, RenderedVariant]) -> None:
    for variant in ("ja", "en", "both"):
        html = issue[variant].html
        assert html.count("<h1") == 1
        assert re.search(r"<h1 [^>]*>[^<]+</h1>", html)
