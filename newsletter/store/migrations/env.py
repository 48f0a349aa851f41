"""Alembic environment: runs against the engine the application hands over."""

from alembic import context

from newsletter.store.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch migrations rebuild a SQLite table and drop the old one: with foreign
        # keys on, that drop would delete every row referring to it (ON DELETE
        # CASCADE). The pragma only takes effect outside a transaction, so it goes
        # to the driver's connection before SQLAlchemy begins one.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if sqlite:  # the connection goes back to the pool: as every other one is
            connection.rollback()
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
