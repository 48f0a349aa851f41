"""mail_events and inbound_messages: bounces, complaints and unsubscribes that come
back by mail or webhook, and the inbound mail nobody could read

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_deliveries_message_id"), "deliveries", ["message_id"])
    op.create_table(
        "mail_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("edition_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('hard_bounce', 'soft_bounce', 'complaint', 'unsubscribe')",
            name=op.f("ck_mail_events_kind"),
        ),
        sa.CheckConstraint(
            "source IN ('smtp', 'inbound', 'ses', 'postmark', 'mailgun', 'sendgrid')",
            name=op.f("ck_mail_events_source"),
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_mail_events_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_mail_events_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_mail_events_edition_id_editions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_mail_events_event_key")),
    )
    op.create_index("ix_mail_events_at", "mail_events", ["at"])
    op.create_index(op.f("ix_mail_events_subscriber_id"), "mail_events", ["subscriber_id"])
    op.create_index(op.f("ix_mail_events_edition_id"), "mail_events", ["edition_id"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mail_from", sa.String(length=320), nullable=False),
        sa.Column("rcpt_to", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
    )
    op.create_index(op.f("ix_inbound_messages_received_at"), "inbound_messages", ["received_at"])


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_table("mail_events")
    op.drop_index(op.f("ix_deliveries_message_id"), table_name="deliveries")
