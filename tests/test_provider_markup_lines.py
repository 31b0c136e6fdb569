"""Folding minified HTML for 8bit transport: lines within 998 octets, the same document."""

from __future__ import annotations

from html.parser import HTMLParser

from newsletter.providers.markup_lines import fold_markup
from newsletter.types import SLOT_UNSUBSCRIBE_URL

LIMIT = 998


class _Events(HTMLParser):
    """What a browser's tokenizer sees: tags with their attributes, text, comments."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.events: list[object] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.events.append(("start", tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        self.events.append(("end", tag))

    def handle_data(self, data: str) -> None:
        self.events.append(("text", data))

    def handle_comment(self, data: str) -> None:
        self.events.append(("comment", data))

    def handle_decl(self, decl: str) -> None:
        self.events.append(("decl", decl))


def tokens(html: str) -> list[object]:
    parser = _Events()
    parser.feed(html)
    parser.close()
    return parser.events


def cell(n: int) -> str:
    return (
        f'<td align="left" class="cell-{n}" style="font-size:14px;line-height:1.6;color:#1f2937;">'
        f"記事 {n} の本文</td>"
    )


MINIFIED = (
    '<!doctype html><html><body><table role="presentation" width="600">'
    + "".join(f"<tr>{cell(n)}</tr>" for n in range(60))
    + "</table></body></html>"
)


def octets(line: str) -> int:
    return len(line.encode("utf-8"))


def test_a_long_minified_line_is_folded_within_the_limit():
    assert octets(MINIFIED) > 4 * LIMIT
    folded = fold_markup(MINIFIED, limit=LIMIT, slot_weight=256)
    assert max(octets(line) for line in folded.split("\n")) <= LIMIT


def test_folding_changes_no_tag_attribute_or_text():
    folded = fold_markup(MINIFIED, limit=LIMIT, slot_weight=256)
    assert tokens(folded) == tokens(MINIFIED)
    assert folded.replace("\n", " ") == MINIFIED, "only spaces between attributes became breaks"


def test_text_quoted_values_and_comments_are_never_broken():
    value = "a b " * 200
    comment = '<!--[if mso | IE]><table role="presentation" border="0"><tr><td><![endif]-->'
    html = f'<p title="{value}">{"語 " * 400}</p>{comment * 20}'
    folded = fold_markup(html, limit=LIMIT, slot_weight=256)
    assert f'title="{value}"' in folded
    assert "語 " * 400 in folded
    assert comment * 20 in folded
    assert tokens(folded) == tokens(html)


def test_a_slot_counts_for_the_value_it_will_hold():
    link = f'<a class="footer-link" href="{SLOT_UNSUBSCRIBE_URL}">配信停止</a>'
    html = "<p>" + link * 6 + "</p>"
    folded = fold_markup(html, limit=LIMIT, slot_weight=256)
    for line in folded.split("\n"):
        assert octets(line) + 256 * line.count(SLOT_UNSUBSCRIBE_URL) <= LIMIT


def test_html_within_the_limit_comes_back_unchanged():
    html = '<p class="lead">短い本文</p>\n<p>二行目</p>'
    assert fold_markup(html, limit=LIMIT, slot_weight=256) is html
