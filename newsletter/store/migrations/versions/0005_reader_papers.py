"""reader_papers: the papers readers gave as examples or marked from an email

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reader_papers",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.Integer(), nullable=False),
        sa.Column("feeling", sa.String(length=10), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("feeling IN ('like', 'fewer')", name=op.f("ck_reader_papers_feeling")),
        sa.CheckConstraint(
            "origin IN ('given', 'email', 'admin')", name=op.f("ck_reader_papers_origin")
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_reader_papers_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["papers.id"], name=op.f("fk_reader_papers_paper_id_papers")
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "paper_id", name=op.f("pk_reader_papers")),
    )


def downgrade() -> None:
    op.drop_table("reader_papers")
