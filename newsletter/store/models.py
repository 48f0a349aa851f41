"""SQLAlchemy 2.0 models: the one description of the schema (migrations follow it).

Times are stored as UTC and always come back timezone-aware, on SQLite too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from newsletter.store.statuses import (
    DeliveryKind,
    DeliveryStatus,
    EditionStatus,
    Feeling,
    MailEventKind,
    MailEventSource,
    Origin,
    SubscriberStatus,
    one_of,
)

# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=UTC)
        return stored.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Paper(Base):
    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # "arxiv:2403.01234" (version stripped) or "title:<hash>" for papers without an id.
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    summary: Mapped[str | None] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    code_url: Mapped[str | None] = mapped_column(Text)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    comments: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    source: Mapped[str] = mapped_column(String(20))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The day the paper was listed (featured on a daily page, or published): the
    # edition windows select on this.
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Sentence embedding, computed once per paper and model (float32 bytes).
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding_model: Mapped[str | None] = mapped_column(String(200))


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (CheckConstraint(one_of("status", SubscriberStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Normalized with email-validator, so case and IDN variants are one subscriber.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING, index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[SubscriberTopic]] = relationship(
        cascade="all, delete-orphan", order_by="SubscriberTopic.topic", lazy="selectin"
    )
    interests: Mapped[list[SubscriberInterest]] = relationship(
        cascade="all, delete-orphan", order_by="SubscriberInterest.id", lazy="selectin"
    )

    @property
    def topic_slugs(self) -> list[str]:
        return [t.topic for t in self.topics]

    @property
    def interest_texts(self) -> list[str]:
        return [i.text for i in self.interests]


class SubscriberTopic(Base):
    """A config topic (by slug) a subscriber picked."""

    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(100), primary_key=True)


class SubscriberInterest(Base):
    """A free-text interest a subscriber typed ("diffusion models for video")."""

    __tablename__ = "subscriber_interests"
    __table_args__ = (UniqueConstraint("subscriber_id", "text"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(200))


class Edition(Base):
    """One weekly issue; the unique key makes planning idempotent."""

    __tablename__ = "editions"
    __table_args__ = (CheckConstraint(one_of("status", EditionStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(16), unique=True)  # "2026-W48"
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=EditionStatus.SENDING)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The failure breaker judges attempts after this one (set on each resume).
    judged_after_attempt: Mapped[int | None] = mapped_column(Integer)


class EditionPaper(Base):
    """The general (non-personal) selection of an edition: the web archive shows it."""

    __tablename__ = "edition_papers"

    edition_id: Mapped[int] = mapped_column(
        ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)


class Delivery(Base):
    """The outbox: one row per subscriber per edition, moved queued → sending → sent|failed."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id", name="uq_deliveries_edition_subscriber"),
        Index("ix_deliveries_claim", "status", "next_attempt_at"),
        # What a delivery's papers refer to: a delivery and the reader it is for.
        Index("uq_deliveries_id_subscriber", "id", "subscriber_id", unique=True),
        CheckConstraint(one_of("status", DeliveryStatus), name="status"),
        CheckConstraint(one_of("kind", DeliveryKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default=DeliveryKind.DIGEST)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When it may be sent: the reader's local send time, later a retry's backoff.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Indexed: a relay's webhook names the message it reports on by this header.
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryPaper(Base):
    """A paper a delivery carries. Unique per subscriber: no paper is ever sent twice.

    One foreign key names the delivery and its reader together: the database checks
    that `subscriber_id` is the delivery's own reader (so the unique key really is per
    reader), and that reader exists through the delivery's key to subscribers; deleting
    either removes these rows. A plan inserts hundreds of thousands of rows and each
    key is checked row by row, so one key for both, not one each.
    """

    __tablename__ = "delivery_papers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["delivery_id", "subscriber_id"],
            ["deliveries.id", "deliveries.subscriber_id"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("subscriber_id", "paper_id", name="uq_delivery_papers_subscriber_paper"),
    )

    delivery_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(String(200), default="")  # the interest it matched


class DeliveryAttempt(Base):
    """Every SMTP attempt's outcome: the failure-rate circuit breaker reads these."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_edition_id_id", "edition_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ok: Mapped[bool] = mapped_column(Boolean)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)


class Lease(Base):
    """A named, expiring lock (the scheduler's leader election uses it)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Meta(Base):
    """Installation-wide values, such as the generated secret key when none is configured."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class InterestEmbedding(Base):
    """A typed interest's or topic's sentence embedding, kept across runs.

    text_key is the SHA-256 of the embedded text (texts can be long; the key is fixed
    width and indexable on every backend). One row per model and text.
    """

    __tablename__ = "interest_embeddings"
    __table_args__ = (
        UniqueConstraint("model", "text_key", name="uq_interest_embeddings_model_text_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    text_key: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReaderPaper(Base):
    """A paper a reader gave as an example or marked from an email: one mark per reader
    and paper (a later one replaces it). Deleting the reader deletes their marks."""

    __tablename__ = "reader_papers"
    __table_args__ = (
        CheckConstraint(one_of("feeling", Feeling), name="feeling"),
        CheckConstraint(one_of("origin", Origin), name="origin"),
    )

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    paper_id: Mapped[int] = mapped_column(ForeignKey("papers.id"), primary_key=True)
    feeling: Mapped[str] = mapped_column(String(10))
    origin: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MailEvent(Base):
    """A bounce, complaint or unsubscribe that came back for a message: from the SMTP
    session, `newsletter inbound` or a relay's webhook. event_key (the provider's event
    id, or the DSN's Message-ID) makes a report delivered twice count once."""

    __tablename__ = "mail_events"
    __table_args__ = (
        CheckConstraint(one_of("kind", MailEventKind), name="kind"),
        CheckConstraint(one_of("source", MailEventSource), name="source"),
        Index("ix_mail_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    edition_id: Mapped[int | None] = mapped_column(
        ForeignKey("editions.id", ondelete="SET NULL"), index=True
    )
    detail: Mapped[str] = mapped_column(Text, default="")
    event_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboundMessage(Base):
    """Mail to `newsletter inbound` that is neither a bounce, a complaint nor an
    unsubscribe: kept for the admin, never dropped."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    mail_from: Mapped[str] = mapped_column(String(320), default="")
    rcpt_to: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
