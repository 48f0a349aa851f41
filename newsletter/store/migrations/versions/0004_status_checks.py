"""CHECK constraints on the status and kind columns: the database refuses unknown values

Revision ID: 0004
Revises: 0003

The values are spelled out here, not taken from newsletter.store.statuses: a migration
describes the schema as it was at this revision.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table → (constraint name, condition)
CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    "subscribers": (
        ("ck_subscribers_status", "status IN ('pending', 'active', 'unsubscribed', 'bounced')"),
    ),
    "editions": (("ck_editions_status", "status IN ('sending', 'paused', 'done')"),),
    "deliveries": (
        (
            "ck_deliveries_status",
            "status IN ('queued', 'sending', 'sent', 'failed', 'skipped')",
        ),
        ("ck_deliveries_kind", "kind IN ('digest', 'quiet')"),
    ),
}


def upgrade() -> None:
    # SQLite cannot add a constraint to a table: batch mode copies it into a new one
    # (env.py turns foreign keys off meanwhile, so dropping the old one cascades nowhere).
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, condition in checks:
                batch.create_check_constraint(op.f(name), condition)


def downgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, _ in checks:
                batch.drop_constraint(op.f(name), type_="check")
