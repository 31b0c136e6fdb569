"""Both languages of an article in every variant: parts one language lacks come from the other,
marked and with their `lang`; the bilingual variant pairs every part and labels its chrome in both
languages; datelines; subjects and preheaders per variant. Rendered for real with mjml-python."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from importlib import resources
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.render.renderer import BOTH_WIDTH, fit_pair, render_issue_variants, render_variant
from newsletter.render.view import IssueView, issue_view_from_dicts
from newsletter.render.width import display_width
from tests.fixtures.render import ISSUE_DATE, make_article

_VOID = {"br", "meta", "img", "hr", "input", "link", "col", "area", "base", "wbr", "source"}


class _LangText(HTMLParser):
    """The visible text of a document, each piece with the language it is declared in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str]] = [("", "")]
        self.pieces: list[tuple[str, str]] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "head"):
            self._skip += 1
        if tag in _VOID:
            return
        lang = dict(attrs).get("lang") or self.stack[-1][1]
        self.stack.append((tag, lang))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "head"):
            self._skip -= 1
        if tag in _VOID:
            return
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.pieces.append((self.stack[-1][1], data))


def text_in(html: str, lang: str) -> str:
    parser = _LangText()
    parser.feed(html)
    return " ".join(text for language, text in parser.pieces if language == lang)


def sample_articles() -> list[dict[str, Any]]:
    text = resources.files("newsletter").joinpath("samples/articles.json").read_text("utf-8")
    return json.loads(text)


def view_of(*articles: dict[str, Any], **fields: Any) -> IssueView:
    return issue_view_from_dicts(7, ISSUE_DATE, list(articles), **fields)


def title_and_lead_only(article: dict[str, Any], language: str) -> dict[str, Any]:
    content = article["content"][language]
    article["content"][language] = {"title": content["title"], "summary": content["summary"]}
    return article


# --- 1. a part the reader's language lacks comes from the other language ------------------


def test_an_english_reader_gets_the_japanese_analysis_marked(render_settings: Settings) -> None:
    article = title_and_lead_only(make_article(1), "en")
    ja = article["content"]["ja"]
    en = render_variant(view_of(article), "en", render_settings)

    japanese = text_in(en.html, "ja")
    assert "ポイント1" in japanese and "ポイント3" in japanese  # key points
    assert ja["impact_analysis"] in japanese and ja["editor_comment"] in japanese
    assert ja["related"][0]["title"] in japanese
    # the lead and title stay English; each borrowed part is marked, in English
    assert "Article 1: a new AI benchmark" in text_in(en.html, "en")
    assert "記事1: 新しい" not in en.html
    assert en.html.count(">In Japanese</span>") == 4  # key points, analysis, comment, related
    assert "日本語のみ" not in en.html

    assert "■ Key points [In Japanese]" in en.text
    assert "■ Impact analysis [In Japanese]" in en.text
    assert "■ Editor's comment [In Japanese]" in en.text
    assert "ポイント1:" in en.text
    assert ja["editor_comment"][:20] in en.text


def test_a_japanese_reader_gets_the_english_analysis_marked(render_settings: Settings) -> None:
    article = title_and_lead_only(make_article(1), "ja")
    en_content = article["content"]["en"]
    ja = render_variant(view_of(article), "ja", render_settings)

    english = text_in(ja.html, "en")
    assert "Point 1" in english and "Point 3" in english
    assert en_content["impact_analysis"] in english and en_content["editor_comment"] in english
    assert "記事1: 新しいAI評価指標が登場" in text_in(ja.html, "ja")
    assert ja.html.count(">英語のみ</span>") == 4
    assert "In English" not in ja.html
    assert "■ 影響分析 [英語のみ]" in ja.text and "■ 編集コメント [英語のみ]" in ja.text
    assert "■ キーポイント [英語のみ]" in ja.text and "Point 1:" in ja.text


def test_a_missing_lead_comes_from_the_other_language(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["en"]["summary"] = ""
    en = render_variant(view_of(article), "en", render_settings)
    lead = article["content"]["ja"]["summary"]
    assert lead in text_in(en.html, "ja")
    assert f"[In Japanese]\n{lead[:10]}" in en.text


def test_the_bilingual_variant_marks_a_part_only_one_language_has(
    render_settings: Settings,
) -> None:
    article = make_article(1)
    article["content"]["ja"]["editor_comment"] = ""
    both = render_variant(view_of(article), "both", render_settings)
    comment = article["content"]["en"]["editor_comment"]
    assert comment in text_in(both.html, "en")
    assert '英語のみ &#183; <span lang="en">In English</span>' in both.html
    assert "■ 編集コメント · Editor's comment [英語のみ · In English]" in both.text


def test_nothing_is_borrowed_when_both_languages_have_the_part(
    render_settings: Settings,
) -> None:
    rendered = render_issue_variants(view_of(make_article(1)), render_settings)
    for variant in ("ja", "en"):
        assert "In Japanese" not in rendered[variant].html
        assert "英語のみ" not in rendered[variant].html
    assert "ポイント1" not in rendered["en"].html and "Point 1" not in rendered["ja"].html


# --- 2. the bilingual variant's chrome in both languages -----------------------------------

CHROME = (
    ("今日のまとめ", "Today's summary"),
    ("本日の記事", "articles today"),
    ("キーポイント", "Key points"),
    ("影響分析", "Impact analysis"),
    ("編集コメント", "Editor's comment"),
    ("関連記事", "Related articles"),
    ("続きを読む", "Read more"),
    ("原文を表示", "View original"),
    ("配信設定", "Change language or preferences"),
    ("配信停止", "Unsubscribe"),
    ("ブラウザで表示", "View in browser"),
    ("お申し込みいただいた方", "You are receiving this email because"),
    ("2026年6月13日", "June 13, 2026"),
)


def test_the_bilingual_variant_has_every_chrome_label_in_both_languages(
    render_settings: Settings,
) -> None:
    both = render_variant(view_of(make_article(1), make_article(2)), "both", render_settings)
    japanese, english = text_in(both.html, "ja"), text_in(both.html, "en")
    for ja_label, en_label in CHROME:
        assert ja_label in japanese, ja_label
        assert en_label in english, en_label  # inside lang="en"
        assert ja_label in both.text and en_label in both.text, en_label
    assert "キーポイント · Key points" in both.text and "続きを読む · Read more" in both.text
    assert "リンク · Links" in both.text


def test_single_language_variants_keep_one_language_of_chrome(render_settings: Settings) -> None:
    rendered = render_issue_variants(view_of(make_article(1)), render_settings)
    for ja_label, en_label in CHROME:
        assert en_label not in rendered["ja"].html and ja_label not in rendered["en"].html


# --- 3. datelines and related summaries ----------------------------------------------------


def test_each_article_has_a_dateline_in_the_lists_time_zone(render_settings: Settings) -> None:
    article = make_article(1, published_at="2026-06-13T05:40:00+09:00", source_name="Kestrel")
    tokyo = render_issue_variants(view_of(article), render_settings)  # the setting: Asia/Tokyo
    assert (
        "Kestrel · 6月13日 5:40" in tokyo["ja"].html
        and "Kestrel · 6月13日 5:40" in tokyo["ja"].text
    )
    assert "Kestrel · Jun 13, 5:40 AM" in tokyo["en"].html.replace("\u202f", " ")
    new_york = render_variant(view_of(article, timezone="America/New_York"), "en", render_settings)
    assert "Kestrel · Jun 12, 4:40 PM" in new_york.text.replace("\u202f", " ")
    unnamed = render_variant(view_of(make_article(1, source_name="")), "ja", render_settings)
    assert "\n6月12日 9:00\n" in unnamed.text


def test_the_text_part_has_the_related_articles_summaries(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["en"]["related"][0]["summary"] = "Why the survey matters to buyers."
    en = render_variant(view_of(article), "en", render_settings)
    assert "・Related story 1-1 [1]\n  Why the survey matters to buyers." in en.text


# --- 4. subjects and preheaders --------------------------------------------------------------


def long_titled(n: int) -> dict[str, Any]:
    article = make_article(n)
    article["content"]["ja"]["title"] = "国内大手各社が生成AIの業務利用を本格化させ" * 2 + f"{n}"
    article["content"]["en"]["title"] = (
        f"Large Japanese companies move generative AI into everyday work, story {n}, "
        "according to a new survey of three hundred firms"
    )
    return article


def test_the_bilingual_subject_and_preheader_hold_both_languages_in_60_columns(
    render_settings: Settings,
) -> None:
    rendered = render_issue_variants(view_of(long_titled(1), long_titled(2)), render_settings)
    both = rendered["both"]
    for line in (both.subject, both.preheader):
        assert display_width(line) <= BOTH_WIDTH, line
        japanese, english = line.split(" / ")
        assert "国内大手" in japanese and english.startswith("Large Japanese")
        assert japanese.endswith("…") and english.endswith("…")
    assert both.subject.startswith("AI日報 6/13: ")
    assert "/" not in rendered["ja"].subject and "Large" not in rendered["ja"].subject
    assert "国内" not in rendered["en"].subject and "国内" not in rendered["en"].preheader
    assert display_width(rendered["en"].subject) > BOTH_WIDTH  # single languages keep room


def test_short_pairs_are_not_cut_and_widths_are_shared() -> None:
    assert (
        fit_pair("評価指標", "Benchmarks", "AI日報 6/13: ", 60)
        == "AI日報 6/13: 評価指標 / Benchmarks"
    )
    long_en = "A very long English headline that needs far more than half of the room"
    pair = fit_pair("短い", long_en, "", 60)
    assert pair.startswith("短い / A very long English headline")  # the unused half goes to English
    assert display_width(pair) <= 60
    assert fit_pair("同じ", "同じ", "", 60) == "同じ"
    assert fit_pair("", "Only English", "X: ", 60) == "X: Only English"


# --- 5. pairing inside an article ------------------------------------------------------------


def test_each_part_is_followed_by_its_other_language(render_settings: Settings) -> None:
    both = render_variant(view_of(make_article(1), make_article(2)), "both", render_settings)
    body = both.html.split('id="article-1"', 1)[1].split('id="article-2"', 1)[0]
    order = [
        "記事1: 新しいAI評価指標が登場",
        "Article 1: a new AI benchmark",
        "ポイント1",
        "Point 1",
        "ポイント2",
        "Point 2",
        "ポイント3",
        "Point 3",
        "関連記事1-1",
        "Related story 1-1",
    ]
    positions = [body.index(text) for text in order]
    assert positions == sorted(positions)
    assert 'lang="en" class="nl-o nl-en"' in body  # the English half is set apart, and says so
    assert body.count('class="nl-o nl-en"') >= 8


def test_key_points_that_do_not_pair_follow_as_a_list(render_settings: Settings) -> None:
    article = make_article(1)
    article["content"]["en"]["key_points"] = article["content"]["en"]["key_points"][:2]
    both = render_variant(view_of(article), "both", render_settings)
    body = both.html.split('id="article-1"', 1)[1]
    assert body.index("ポイント3") < body.index("Point 1") < body.index("Point 2")
    assert "  - Point 1:" in both.text


# --- the demo issue ----------------------------------------------------------------------------


@pytest.fixture
def demo(render_settings: Settings) -> dict[str, Any]:
    articles = sample_articles()
    return render_issue_variants(view_of(*articles), render_settings)


def test_the_demo_issue_never_drops_an_analysis(demo: dict[str, Any]) -> None:
    """Every variant carries an analysis for every sample article that has one in any language:
    the reader's own when it exists, else the other language's (and both in "both")."""
    checked = 0
    for article in sample_articles():
        analyses = {
            lang: c["impact_analysis"].split("\n")[0][:30]
            for lang, c in article["content"].items()
            if c.get("impact_analysis")
        }
        for lang in analyses:
            assert analyses[lang] in demo["both"].html, (article["id"], "both", lang)
        for variant, other in (("ja", "en"), ("en", "ja")):
            expected = analyses.get(variant) or analyses.get(other)
            if expected:
                assert expected in demo[variant].html, (article["id"], variant)
                checked += 1
    assert checked >= 16
