"""An article as a plain dict in the import format: the issue snapshot and the renderer's input.

It lives beside the models so that both the article import (which validates the format) and
the renderer (a lower layer) read and write the one shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from newsletter.db.models import Article
from newsletter.types import CONTENT_LANGUAGES


def format_timestamp(value: datetime) -> str:
    """RFC 3339 with offset, seconds precision unless the value has microseconds."""
    return value.isoformat()


def article_to_dict(article: Article) -> dict[str, Any]:
    """A stored article in the import-format shape: the issue snapshot and the renderer's input.

    Every key of the format is present (absent optional text is None, absent lists are empty),
    so readers need no defaults; the dict re-imports as the same article.
    """
    content: dict[str, Any] = {}
    for lang in CONTENT_LANGUAGES:
        c = article.content(lang)
        if c is None:
            continue
        content[lang] = {
            "title": c.title,
            "summary": c.summary,
            "key_points": [
                {"heading": p.get("heading"), "body": p.get("body")} for p in c.key_points or []
            ],
            "impact_analysis": c.impact_analysis,
            "editor_comment": c.editor_comment,
            "body": c.body,
            "related": [
                {"title": r.get("title"), "summary": r.get("summary"), "url": r.get("url")}
                for r in c.related or []
            ],
        }
    return {
        "id": article.external_id,
        "url": article.url,
        "source_url": article.source_url,
        "source_name": article.source_name,
        "published_at": format_timestamp(article.published_at),
        "importance": article.importance,
        "tags": list(article.tags or []),
        "content": content,
    }
