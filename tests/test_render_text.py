"""The plain-text part: display-width wrapping, numbered links, the 998-byte line rule."""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.render.links import add_utm, safe_http_url
from newsletter.render.plaintext import WIDTH, finish, hard_split, wrap_line
from newsletter.render.renderer import render_variant
from newsletter.render.view import issue_view_from_dicts
from newsletter.render.width import display_width, truncate_width
from tests.fixtures.render import ISSUE_DATE, make_article


def render_text(settings: Settings, *articles: dict, variant: str = "both") -> str:
    view = issue_view_from_dicts(1, ISSUE_DATE, list(articles))
    return render_variant(view, variant, settings).text


def test_wide_characters_count_two_columns() -> None:
    assert display_width("AI日報") == 6
    assert display_width("ＡＢ") == 4
    assert truncate_width("日本語のテキスト", 9) == "日本語の…"


def test_english_is_shortened_on_a_word_boundary() -> None:
    assert truncate_width("A research team published a benchmark", 24) == "A research team…"
    assert truncate_width("short", 24) == "short"


def test_no_line_is_wider_than_the_wrap_width_except_urls(render_settings: Settings) -> None:
    text = render_text(render_settings, *(make_article(n, long=True) for n in range(1, 4)))
    for line in text.splitlines():
        if "http" not in line:
            assert display_width(line) <= WIDTH + 2, line  # +2: a closing 。 may hang


def test_japanese_lines_do_not_start_with_closing_punctuation() -> None:
    line = "あ" * 35 + "。" + "い" * 10
    wrapped = wrap_line(line, 72)
    assert all(not part.startswith("。") for part in wrapped)
    assert "".join(wrapped) == line


def test_wrapped_bullets_keep_their_indent() -> None:
    wrapped = wrap_line("・" + "word " * 30, 40)
    assert wrapped[0].startswith("・word")
    assert all(part.startswith("  word") for part in wrapped[1:])


def test_links_are_numbered_references_listed_at_the_end(render_settings: Settings) -> None:
    text = render_text(render_settings, make_article(1), variant="ja")
    body, links = text.split("リンク\n", 1)
    assert "続きを読む: [3]" in body
    assert "[3] https://ainippo.example/articles/1?utm_source=newsletter&utm_medium=email" in links
    assert "[4] https://publisher.example/news/1?ref=feed" in links


def test_a_long_url_stays_intact_on_its_own_line(render_settings: Settings) -> None:
    url = "https://ainippo.example/articles/" + "x" * 600
    text = render_text(render_settings, make_article(1, url=url), variant="en")
    assert any(line.startswith(("[", "https")) and url in line for line in text.splitlines())


def test_no_line_exceeds_998_bytes(render_settings: Settings) -> None:
    article = make_article(1, url="https://ainippo.example/" + "y" * 1500)
    article["content"]["ja"]["summary"] = "長" * 2000  # a single unbreakable... breakable run
    article["content"]["en"]["summary"] = "z" * 3000  # one unbreakable 3000-byte word
    text = render_text(render_settings, article)
    assert max(len(line.encode("utf-8")) for line in text.splitlines()) <= 998


def test_hard_split_never_cuts_a_character() -> None:
    pieces = hard_split("日" * 400, 998)  # 1200 bytes
    assert all(len(p.encode("utf-8")) <= 998 for p in pieces)
    assert "".join(pieces) == "日" * 400


def test_the_text_part_holds_no_html(render_settings: Settings) -> None:
    text = render_text(render_settings, make_article(1), make_article(2))
    assert "<" not in text and "&amp;" not in text and "&#" not in text


def test_blank_line_runs_are_collapsed() -> None:
    assert finish("a\n\n\n\nb\n\n") == "a\n\nb\n"


# --- URLs -----------------------------------------------------------------------------------


def test_utm_is_appended_to_an_existing_query_string() -> None:
    assert (
        add_utm("https://a.example/p?x=1&y=2#frag", "utm_source=newsletter&utm_medium=email")
        == "https://a.example/p?x=1&y=2&utm_source=newsletter&utm_medium=email#frag"
    )


def test_utm_starts_a_query_string_when_there_is_none() -> None:
    assert add_utm("https://a.example/p", "utm_source=n") == "https://a.example/p?utm_source=n"


def test_utm_never_overrides_a_parameter_the_link_has() -> None:
    url = "https://a.example/p?utm_source=partner"
    assert add_utm(url, "utm_source=newsletter&utm_medium=email") == url + "&utm_medium=email"


def test_empty_utm_setting_leaves_links_alone() -> None:
    assert add_utm("https://a.example/p?x=1", "") == "https://a.example/p?x=1"


def test_only_absolute_http_urls_are_safe() -> None:
    assert safe_http_url("https://a.example/x?y=1") == "https://a.example/x?y=1"
    assert safe_http_url("HTTP://A.example") == "HTTP://A.example"
    for bad in (
        "javascript:alert(1)",
        "ftp://a.example",
        "//a.example",
        "https://",
        None,
        3,
        "https://a.example/a b",
        "https://a.example/\x00",
        "vbscript:x",
    ):
        assert safe_http_url(bad) is None, bad


def test_an_issue_without_links_has_no_empty_links_heading(render_settings: Settings) -> None:
    article = make_article(1, url=None, source_url=None)
    for content in article["content"].values():
        content["related"] = []
    text = render_text(render_settings, article, variant="en")
    assert "Links" not in text and "[1]" not in text
    assert "Unsubscribe:" in text
