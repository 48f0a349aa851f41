"""What every service needs: the settings, the database and the signing key."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.store import db
from newsletter.store.meta import generated_secret_key


@dataclass
class Runtime:
    """Built once per process (a command, the web app, the scheduler) and handed to
    every service; `close` releases the database's connections."""

    settings: Settings
    engine: Engine = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.engine = db.make_engine(self.settings.database.url)
        self.sessions = db.session_factory(self.engine)

    @cached_property
    def secret_key(self) -> str:
        """config/env secret_key, else the installation's generated one (see store.meta)."""
        if self.settings.secret_key:
            return self.settings.secret_key
        with db.transaction(self.sessions, immediate=True) as session:
            return generated_secret_key(session)

    def require_schema(self) -> None:
        db.require_schema(self.engine)

    def close(self) -> None:
        self.engine.dispose()
