"""An issue, a build and a selection as plain data: what `issue build --json` prints and the
API answers, from one place so the two never differ."""

from __future__ import annotations

from typing import Any

from newsletter.articles.queries import headline
from newsletter.articles.selection import Selection
from newsletter.db.models import Issue
from newsletter.issues.assembly import BuildResult


def issue_dict(issue: Issue) -> dict[str, Any]:
    return {
        "id": issue.id,
        "list": issue.mailing_list.slug,
        "date": issue.issue_date.isoformat(),
        "status": issue.status,
        "window_start": issue.window_start.isoformat(),
        "cutoff_at": issue.cutoff_at.isoformat(),
        "approved_by": issue.approved_by,
        "approved_at": issue.approved_at.isoformat() if issue.approved_at else None,
        "articles": [
            {
                "position": item.position,
                "id": item.article.external_id,
                "pinned": item.pinned,
                "title": headline(item.article),
            }
            for item in issue.articles
        ],
    }


def explain(selection: Selection | None) -> list[dict[str, Any]]:
    """Why each candidate is in or out, in the selection's words."""
    if selection is None:
        return []
    return [
        {"id": d.external_id, "selected": d.selected, "position": d.position, "reason": d.reason}
        for d in selection.decisions
    ]


def result_dict(result: BuildResult | None, reason: str | None = None) -> dict[str, Any]:
    if result is None:
        return {"issue": None, "created": False, "reason": reason, "explain": []}
    return {
        "issue": None if result.issue is None else issue_dict(result.issue),
        "created": result.created,
        "reason": result.reason,
        "explain": explain(result.selection),
    }
