"""A sent issue with articles, accepted deliveries and click/open events, written straight into
the database (bulk inserts) for the statistics, retention, CLI, API and desk tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db.models import (
    Article,
    ClickEvent,
    Delivery,
    Issue,
    IssueArticle,
    MailingList,
    OpenEvent,
    Subscriber,
)
from tests.fixtures.delivery import T0, add_subscribers

# (import id, Japanese title, English title), in issue order.
ARTICLES = (
    ("gpt-next", "次世代モデルが登場", "The next model arrives"),
    ("chips", "AI半導体の供給", "AI chip supply"),
    ("policy", "AI規制の新方針", "A new AI policy"),
)


@dataclass
class EngagedIssue:
    list_id: int
    issue_id: int
    article_ids: list[int]  # in issue order
    deliveries: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # variant -> [(delivery_id, subscriber_id)], tracked accepted deliveries


def make_list(
    session: Session, slug: str = "daily", *, clicks: bool = True, opens: bool = False
) -> int:
    mailing_list = MailingList(
        slug=slug, name="AI日報", click_tracking=clicks, open_tracking=opens, created_at=T0
    )
    session.add(mailing_list)
    session.flush()
    return mailing_list.id


def make_articles(session: Session, prefix: str = "") -> list[tuple[int, dict[str, Any]]]:
    """The three articles, with the snapshot an issue keeps of each."""
    out = []
    for ident, ja, en in ARTICLES:
        article = Article(
            external_id=prefix + ident,
            url=f"https://example.org/{prefix}{ident}",
            published_at=T0,
            content_hash=ident,
            created_at=T0,
            updated_at=T0,
        )
        session.add(article)
        session.flush()
        snapshot = {"id": prefix + ident, "content": {"ja": {"title": ja}, "en": {"title": en}}}
        out.append((article.id, snapshot))
    return out


def make_issue(
    session: Session,
    list_id: int,
    articles: list[tuple[int, dict[str, Any]]],
    issue_date: date = date(2026, 6, 13),
) -> int:
    issue = Issue(
        list_id=list_id,
        issue_date=issue_date,
        status="sent",
        window_start=T0 - timedelta(days=1),
        cutoff_at=T0,
        created_at=T0,
        built_at=T0,
        sent_at=T0,
    )
    session.add(issue)
    session.flush()
    session.execute(
        insert(IssueArticle),
        [
            {"issue_id": issue.id, "article_id": a, "position": n, "snapshot": snap}
            for n, (a, snap) in enumerate(articles, 1)
        ],
    )
    return issue.id


def deliver(
    session: Session, issue_id: int, subscribers: list[tuple[int, str]], *, tracked: bool = True
) -> list[tuple[int, int, str]]:
    """Accepted deliveries for (subscriber id, variant); returns (delivery, subscriber, variant)."""
    session.execute(
        insert(Delivery),
        [
            {"issue_id": issue_id, "subscriber_id": s, "variant": v, "tracked": tracked,
             "status": "accepted", "accepted_at": T0, "updated_at": T0}
            for s, v in subscribers
        ],
    )  # fmt: skip
    ids = {s for s, _ in subscribers}
    return [
        (d, s, v)
        for d, s, v in session.execute(
            select(Delivery.id, Delivery.subscriber_id, Delivery.variant).where(
                Delivery.issue_id == issue_id
            )
        )
        if s in ids
    ]


def subscribers_of(session: Session, emails: list[str]) -> list[tuple[int, str]]:
    rows = session.execute(
        select(Subscriber.id, Subscriber.language).where(Subscriber.email_key.in_(emails))
    )
    return sorted(rows)


def click(
    issue_id: int,
    delivery: tuple[int, int, str],
    article_id: int | None,
    position: int,
    *,
    kind: str = "article",
    machine: bool = False,
    reason: str | None = None,
    at: datetime = T0 + timedelta(hours=1),
) -> dict[str, Any]:
    d, s, v = delivery
    return {"issue_id": issue_id, "subscriber_id": s, "delivery_id": d, "link_no": position,
            "article_id": article_id, "kind": kind, "variant": v, "position": position,
            "at": at, "machine": machine, "reason": reason}  # fmt: skip


def opened(
    issue_id: int,
    delivery: tuple[int, int, str],
    source: str = "reader",
    at: datetime = T0 + timedelta(hours=1),
) -> dict[str, Any]:
    d, s, v = delivery
    return {"issue_id": issue_id, "subscriber_id": s, "delivery_id": d, "variant": v,
            "at": at, "source": source}  # fmt: skip


def add_events(
    session: Session, clicks: list[dict[str, Any]], opens: list[dict[str, Any]] | None = None
) -> None:
    if clicks:
        session.execute(insert(ClickEvent), clicks)
    if opens:
        session.execute(insert(OpenEvent), list(opens))


@dataclass
class Scene:
    """The standard scene: 12 subscribers (4 ja, 4 en, 4 both), 10 tracked and 2 opted out,
    three articles; known reader, machine and pixel events."""

    list_id: int
    issue_id: int
    article_ids: list[int]
    deliveries: list[tuple[int, int, str]]  # tracked ones


def standard_scene(sessions: sessionmaker[Session], *, opens: bool = True) -> Scene:
    with sessions.begin() as session:
        list_id = make_list(session, opens=opens)
        articles = make_articles(session)
        issue_id = make_issue(session, list_id, articles)
        emails = add_subscribers(session, list_id, 0, 12)
        subs = subscribers_of(session, emails)
        tracked = deliver(session, issue_id, subs[:10])
        deliver(session, issue_id, subs[10:], tracked=False)
        a1, a2, a3 = (a for a, _ in articles)
        ja = [d for d in tracked if d[2] == "ja"]
        en = [d for d in tracked if d[2] == "en"]
        both = [d for d in tracked if d[2] == "both"]
        clicks = [
            # article 1: 3 readers (ja, ja, en), one of them twice; 4 reader clicks
            click(issue_id, ja[0], a1, 1),
            click(issue_id, ja[0], a1, 1, kind="source"),
            click(issue_id, ja[1], a1, 1),
            click(issue_id, en[0], a1, 1),
            # article 2: one reader in both
            click(issue_id, both[0], a2, 2, kind="related"),
            # a web-version link: a reader click on no article
            click(issue_id, en[1], None, 0, kind="related"),
            # a scanner on every link of one delivery, and a prefetch
            click(issue_id, en[2], a1, 1, machine=True, reason="head"),
            click(issue_id, en[2], a2, 2, machine=True, reason="head"),
            click(issue_id, en[2], a3, 3, machine=True, reason="head"),
            click(issue_id, both[1], a3, 3, machine=True, reason="early"),
        ]
        pixel = [
            opened(issue_id, ja[0]),
            opened(issue_id, ja[0]),
            opened(issue_id, en[0]),
            opened(issue_id, both[0], "apple_mpp"),
            opened(issue_id, both[1], "apple_mpp"),
            opened(issue_id, ja[1], "proxy"),
        ]
        add_events(session, clicks, pixel if opens else [])
        return Scene(list_id, issue_id, [a1, a2, a3], tracked)


# --- one read-only scene per database, shared by a module's tests ---------------------------


def scene_sessions(request: Any, tmp_path_factory: Any) -> Iterator[tuple[Any, Scene]]:
    """Yield (sessions, scene) for a module-scoped fixture parametrized sqlite/postgresql: the
    schema and the standard scene are written once and only read by the module's tests."""
    import uuid

    from sqlalchemy import create_engine, text

    import tests.conftest as conftest
    from newsletter.db.migrate import upgrade
    from newsletter.db.session import make_engine, session_factory

    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('scene') / 'newsletter.db'}"
    else:
        if conftest._PG_PROBLEM is False:
            conftest._PG_PROBLEM = conftest._postgres_reachable()
        if conftest._PG_PROBLEM:
            conftest.service_unavailable(str(conftest._PG_PROBLEM))
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(conftest.POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = conftest.postgres_url_for_schema(schema)
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        yield sessions, standard_scene(sessions)
    finally:
        engine.dispose()
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
