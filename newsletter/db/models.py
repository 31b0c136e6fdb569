"""The data model. One module so the whole schema reads in one sitting.

Tables, by who writes them:
- articles, article_contents: ingestion (`newsletter.articles`)
- lists, subscribers, subscriptions, consent_records, suppressions: `subscribers`
- soft_bounces: provider events and bounce mail (`newsletter.webhooks.soft_bounces`)
- issues, issue_articles, issue_overrides, issue_variants: issue assembly and rendering
- send_batches, deliveries: the send ledger (`newsletter.delivery.ledger`)
- events: provider webhooks (`newsletter.webhooks`)
- users, sign_in_links, api_tokens, idempotency_keys, audit_log: who may do what, and what
  they did (`newsletter.accounts`)
- issue_notes: the editor's note per list and date (`newsletter.issues.editorial`)
- issue_links, click_events, open_events, engagement_totals, subject_tests: what readers did
  with an issue, first-party (`newsletter.engagement`)
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    false,
    literal,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from newsletter.db.types import JSONType, UTCDateTime
from newsletter.types import BatchStatus, DeliveryStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY; BigInteger there would not.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- articles -------------------------------------------------------------------------------


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)  # the format's `id`
    url: Mapped[str] = mapped_column(String(2048))
    source_url: Mapped[str | None] = mapped_column(String(2048))
    source_name: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    importance: Mapped[int] = mapped_column(Integer, default=50)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))  # detects "unchanged" re-imports
    origin: Mapped[str | None] = mapped_column(String(2048))  # file or feed it came from
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    contents: Mapped[list[ArticleContent]] = relationship(
        back_populates="article", cascade="all, delete-orphan", lazy="selectin"
    )

    def content(self, language: str) -> ArticleContent | None:
        return next((c for c in self.contents if c.language == language), None)


class ArticleContent(Base):
    __tablename__ = "article_contents"
    __table_args__ = (UniqueConstraint("article_id", "language"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    key_points: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    impact_analysis: Mapped[str | None] = mapped_column(Text)
    editor_comment: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    related: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)

    article: Mapped[Article] = relationship(back_populates="contents")


# --- lists and subscribers ------------------------------------------------------------------


class MailingList(Base):
    """A newsletter list. Each list gets one issue per date, with its own schedule."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: NEWSLETTER_TIMEZONE
    send_time: Mapped[str | None] = mapped_column(String(5))  # "HH:MM"; None: the setting
    max_articles: Mapped[int | None] = mapped_column(Integer)
    min_articles: Mapped[int | None] = mapped_column(Integer)
    utm_params: Mapped[str | None] = mapped_column(String(500))
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    # First-party engagement (newsletter.engagement): links through /c/, an opt-in pixel.
    click_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    open_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))  # as normalised by email-validator
    email_key: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased: uniqueness
    email_hash: Mapped[str] = mapped_column(String(64), index=True)  # keyed hash: suppression
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="ja")  # ja | en | both | both-en
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The subscriber switched engagement tracking off: direct links, no pixel, no events.
    tracking_off: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan"
    )


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "list_id"),
        Index("ix_subscriptions_list_status_subscriber", "list_id", "status", "subscriber_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    source: Mapped[str] = mapped_column(String(32), default="admin")  # web | import | admin
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[MailingList] = relationship()


class ConsentRecord(Base):
    """Proof of consent, kept as the law asks: when, how, from where, with what wording.

    Append-only. On erasure the personal link is cut (subscriber_id NULL) and the IP dropped.
    """

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))  # subscribe | confirm | unsubscribe | ...
    source: Mapped[str] = mapped_column(String(32))  # web | import | admin | webhook | email
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    wording_version: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Suppression(Base):
    """An address that is never mailed again, by any path. Kept as a keyed hash only."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(16))  # SuppressionReason
    source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SoftBounce(Base):
    """A day on which mail to an address failed for a passing reason (mailbox full, blocked).

    One row per address and day, whatever the number of reports; enough days within the
    window suppress the address like a hard bounce, and a delivery clears them.
    """

    __tablename__ = "soft_bounces"
    __table_args__ = (UniqueConstraint("email_hash", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(32))  # webhook | smtp
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Meta(Base):
    """Installation-wide values that must outlive configuration changes (e.g. the hash pepper)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --- issues ---------------------------------------------------------------------------------


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("list_id", "issue_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    issue_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(24), default="built")  # IssueStatus
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    cutoff_at: Mapped[datetime] = mapped_column(UTCDateTime)  # selection window end
    subject_ja: Mapped[str | None] = mapped_column(String(300))
    subject_en: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime)
    send_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)  # why skipped, what was trimmed, ...
    # Who approved this build, and when; any later editorial change clears both.
    approved_by: Mapped[str | None] = mapped_column(String(320))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    mailing_list: Mapped[MailingList] = relationship()
    articles: Mapped[list[IssueArticle]] = relationship(
        back_populates="issue",
        cascade="all, delete-orphan",
        order_by="IssueArticle.position",
    )


class IssueArticle(Base):
    __tablename__ = "issue_articles"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # The article as it was when the issue froze: a later re-import never changes a sent issue.
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    issue: Mapped[Issue] = relationship(back_populates="articles")
    article: Mapped[Article] = relationship()


class IssueOverride(Base):
    """An editor's decision for one list and date: pin (with order) or exclude an article."""

    __tablename__ = "issue_overrides"
    __table_args__ = (UniqueConstraint("list_id", "issue_date", "article_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    issue_date: Mapped[date] = mapped_column(Date)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))  # pin | exclude | position
    position: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IssueNote(Base):
    """The editor's note for one list and date, in each language; kept across rebuilds."""

    __tablename__ = "issue_notes"
    __table_args__ = (UniqueConstraint("list_id", "issue_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    issue_date: Mapped[date] = mapped_column(Date)
    note_ja: Mapped[str | None] = mapped_column(Text)
    note_en: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IssueVariant(Base):
    """A rendered language variant, stored once so every worker sends the same bytes.

    A list with click or open tracking has each variant twice: `tracked` (links through /c/,
    the pixel) for most readers, and direct links for subscribers who switched tracking off.
    """

    __tablename__ = "issue_variants"
    __table_args__ = (UniqueConstraint("issue_id", "variant", "tracked"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(8))  # ja | en | both | both-en
    tracked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    trimmed: Mapped[list[str]] = mapped_column(JSONType, default=list)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- the send ledger ------------------------------------------------------------------------


class SendBatch(Base):
    """A unit of provider work: one variant, up to the provider's batch size of recipients.

    Claimed with a lease (`lease_until`) so many workers can share an issue; see
    `newsletter.delivery.ledger` for the state machine.
    """

    __tablename__ = "send_batches"
    __table_args__ = (Index("ix_send_batches_issue_status", "issue_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(8))
    # Which form of the variant the batch's recipients get (see Delivery).
    tracked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    subject_arm: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # BatchStatus
    size: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)  # retry-after
    # When this batch was last posted: reconciliation compares in-doubt batches with the
    # batches posted after them (whose provider events prove the event stream is flowing).
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    # A batch the provider took whole settles its members by this row alone: those still
    # `queued` in it were accepted at `accepted_at`, and `accepted` counts them
    # (`delivery_status`, `issue_state.recipient_counts`).
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


MARKED_SQL = "status <> 'queued'"  # the predicate of ix_deliveries_issue_marked


class Delivery(Base):
    """One recipient of one issue. The unique constraint is the "never twice" guarantee."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        # A batch's members with what its load reads of them: the load reads no delivery row.
        Index("ix_deliveries_batch_members", "batch_id", "status", "subscriber_id"),
        # The rows that carry an outcome of their own (skipped, failed, in doubt, cancelled,
        # accepted by their own row), not the `queued` ones: planning writes no entry here,
        # and a batch accepted whole changes none. The counts read `queued` as the rest of
        # the issue's rows (`issue_state.recipient_counts`).
        Index(
            "ix_deliveries_issue_marked",
            "issue_id",
            "status",
            sqlite_where=text(MARKED_SQL),
            postgresql_where=text(MARKED_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("send_batches.id"))
    variant: Mapped[str] = mapped_column(String(8))
    # Tracked links and pixel (the list tracks and the subscriber did not switch it off).
    tracked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A subject-line test's arm (index into its subjects); None: the issue's own subject.
    subject_arm: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # DeliveryStatus
    error: Mapped[str | None] = mapped_column(Text)
    failure_kind: Mapped[str | None] = mapped_column(String(16))  # FailureKind, when failed
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Latest provider event (delivered, bounce, open, click, ...), from webhooks.
    last_event: Mapped[str | None] = mapped_column(String(32))
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _settled_by_batch() -> ColumnElement[bool]:
    return and_(
        Delivery.status == DeliveryStatus.QUEUED.value,
        SendBatch.status == BatchStatus.ACCEPTED.value,
    )


def delivery_status() -> ColumnElement[str]:
    """A delivery's status as every reader must see it, over deliveries outer-joined to their
    batch (`SendBatch.id == Delivery.batch_id`).

    When the provider takes a whole batch the sender writes the batch row only (a thousand
    member rows rewritten were the largest part of a send's database work): a member still
    `queued` in an `accepted` batch was accepted with it."""
    return case(
        (_settled_by_batch(), literal(DeliveryStatus.ACCEPTED.value)), else_=Delivery.status
    )


def delivery_accepted_at() -> ColumnElement[datetime | None]:
    """When the provider accepted the delivery (its batch's time when the batch settled it);
    over the same join as `delivery_status`."""
    return case((_settled_by_batch(), SendBatch.accepted_at), else_=Delivery.accepted_at)


class Event(Base):
    """A provider event (webhook), kept verbatim and applied idempotently."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_events_issue_type", "issue_id", "type"),
        Index("ix_events_batch", "batch_id"),  # reconciliation: any event for this batch?
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(200))  # provider's id, else a content hash
    type: Mapped[str] = mapped_column(String(32))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    batch_id: Mapped[int | None] = mapped_column(BigId)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    email_hash: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


# --- scheduling -----------------------------------------------------------------------------


class SendClaim(Base):
    """Which process drives an issue's send: the atomic claim that makes "once a day" hold.

    Two schedulers that both decide to send today's issue race to insert (or take over an
    expired) row; the database lets exactly one win. The winner renews `lease_until` while it
    sends, so a crashed owner's claim expires and the next start resumes the send.
    """

    __tablename__ = "send_claims"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(200))  # host:pid of the scheduler or `run`
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# --- accounts -------------------------------------------------------------------------------


class User(Base):
    """A person who uses the desk: an editor's account, with one role.

    `session_epoch` is part of every session cookie: disabling the account, changing its role
    or its password bumps it, and every older session stops working at once.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # normalised, lower-case
    role: Mapped[str] = mapped_column(String(16))  # Role
    password_hash: Mapped[str | None] = mapped_column(String(200))  # Argon2id; None: link only
    language: Mapped[str | None] = mapped_column(String(8))  # desk language; None: browser's
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInLink(Base):
    """A sign-in link sent by email: only its hash is kept; it expires and works once."""

    __tablename__ = "sign_in_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for scripts: shown once when created, only its hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # Role
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, to recognise it
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """The answer to a POST made with an `Idempotency-Key`: a retry gets it again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(120))  # e.g. "token:7"
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(2048))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)  # None while the first is running
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuditEntry(Base):
    """One editorial, sending or account action: who, when, what, before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_issue_at", "issue_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(320))  # an account's email, "token:NAME", "cli:USER"
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))  # e.g. issue.approve, user.disable
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    list_id: Mapped[int | None] = mapped_column(ForeignKey("lists.id", ondelete="SET NULL"))
    issue_date: Mapped[date | None] = mapped_column(Date)
    subject: Mapped[str | None] = mapped_column(String(320))  # what it acted on, in words
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


# --- engagement -----------------------------------------------------------------------------


class IssueLink(Base):
    """A link of a tracked variant: `/c/TOKEN/<link_no>` redirects only to `url`.

    Written when the tracked variants are rendered; the redirect can never lead anywhere the
    issue's own snapshot did not link to, so it is not an open redirect.
    """

    __tablename__ = "issue_links"
    __table_args__ = (UniqueConstraint("issue_id", "link_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    link_no: Mapped[int] = mapped_column(Integer)  # unique within the issue, across variants
    variant: Mapped[str] = mapped_column(String(8))
    article_id: Mapped[int | None] = mapped_column(Integer)  # None: not an article's link
    kind: Mapped[str] = mapped_column(String(16))  # article | source | related
    position: Mapped[int] = mapped_column(Integer)  # the article's place in the issue, from 1
    url: Mapped[str] = mapped_column(String(2048))  # where the click goes, UTM included


class ClickEvent(Base):
    """One request to a tracked link. `machine` clicks (scanners, prefetchers) are kept apart,
    with the reason, and never counted as readers."""

    __tablename__ = "click_events"
    __table_args__ = (
        # Covers every statistics query (newsletter.engagement.tally): read from the index
        # alone, an issue's million clicks are counted without touching the table.
        Index(
            "ix_click_events_issue_counts",
            "issue_id",
            "machine",
            "article_id",
            "variant",
            "kind",
            "position",
            "delivery_id",
        ),  # fmt: skip
        Index("ix_click_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    link_no: Mapped[int] = mapped_column(Integer)
    article_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # the link's kind
    variant: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    machine: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(16))  # why machine: head|early|burst|agent


class OpenEvent(Base):
    """One fetch of the opt-in pixel. `source` says how much it means: a `reader` fetch, or an
    `apple_mpp` / `proxy` prefetch that happens whether or not anyone read the email."""

    __tablename__ = "open_events"
    __table_args__ = (
        Index("ix_open_events_issue", "issue_id"),
        Index("ix_open_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    variant: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))  # reader | apple_mpp | proxy | machine


class EngagementTotal(Base):
    """What remains of raw events after NEWSLETTER_EVENTS_RETENTION_DAYS: counts, no people.

    One row per issue, metric and breakdown; 0 / "" stand for "all" (issue-wide counts).
    `events` counts requests, `people` distinct subscribers (computed before the raw rows go).
    """

    __tablename__ = "engagement_totals"
    __table_args__ = (
        UniqueConstraint("issue_id", "metric", "variant", "article_id", "kind", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(16))  # click | machine_click | open | proxy_open
    variant: Mapped[str] = mapped_column(String(8), default="")
    article_id: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    events: Mapped[int] = mapped_column(Integer, default=0)
    people: Mapped[int] = mapped_column(Integer, default=0)


class SubjectTest(Base):
    """A subject-line test: a random sample gets the arms, the winner goes to the rest."""

    __tablename__ = "subject_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), unique=True)
    # {"ja": ["...", "..."], "en": ["...", "..."]}: arm i is the i-th subject of each language
    subjects: Mapped[dict[str, Any]] = mapped_column(JSONType)
    sample_percent: Mapped[int] = mapped_column(Integer)
    wait_seconds: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16))  # clicks | opens
    status: Mapped[str] = mapped_column(String(16))  # sampling|waiting|decided|done|cancelled
    sample_size: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decide_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # sample sent + wait
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    winner_arm: Mapped[int | None] = mapped_column(Integer)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # per arm: sent, metric
