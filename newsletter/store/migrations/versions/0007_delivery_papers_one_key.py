"""delivery_papers refer to their delivery and its reader with one foreign key
(delivery_id, subscriber_id) → deliveries (id, subscriber_id), instead of one key to
deliveries and one to subscribers

Revision ID: 0007
Revises: 0006

The database now also checks that a delivery paper's reader is its delivery's reader;
the reader still has to exist (the delivery's own key) and deleting a reader or a
delivery still removes the rows. Planning inserts a row per paper per reader, each
key checked per row: one check fewer per row.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TO_DELIVERY = "fk_delivery_papers_delivery_id_deliveries"
TO_SUBSCRIBER = "fk_delivery_papers_subscriber_id_subscribers"
PARENT_KEY = "uq_deliveries_id_subscriber"


def upgrade() -> None:
    # A foreign key needs a unique key on the columns it refers to.
    op.create_index(PARENT_KEY, "deliveries", ["id", "subscriber_id"], unique=True)
    # SQLite cannot change a table's foreign keys: batch mode copies it into a new one
    # (env.py turns foreign keys off meanwhile, so dropping the old one cascades nowhere).
    with op.batch_alter_table("delivery_papers") as batch:
        batch.drop_constraint(TO_DELIVERY, type_="foreignkey")
        batch.drop_constraint(TO_SUBSCRIBER, type_="foreignkey")
        batch.create_foreign_key(
            TO_DELIVERY,
            "deliveries",
            ["delivery_id", "subscriber_id"],
            ["id", "subscriber_id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("delivery_papers") as batch:
        batch.drop_constraint(TO_DELIVERY, type_="foreignkey")
        batch.create_foreign_key(
            TO_DELIVERY, "deliveries", ["delivery_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            TO_SUBSCRIBER, "subscribers", ["subscriber_id"], ["id"], ondelete="CASCADE"
        )
    op.drop_index(PARENT_KEY, table_name="deliveries")
