"""Typed, validated settings loaded from config.yaml.

Unknown keys, wrong types and missing values are errors that name the key and the
file, so a typo never silently falls back to a default. Secrets may come from the
environment instead of the file. Imports nothing of newsletter but errors.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from newsletter.config.mail import (
    BouncesConfig,
    DeliveryConfig,
    DkimConfig,
    Section,
    SenderConfig,
    SmtpConfig,
)
from newsletter.errors import ConfigError

DEFAULT_PATH = Path("config.yaml")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = get_args(Weekday)

# Environment variables that override a config key, so secrets stay out of the file.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "NEWSLETTER_SECRET_KEY": ("secret_key",),
    "NEWSLETTER_SMTP_PASSWORD": ("smtp", "password"),
    "NEWSLETTER_SMTP_HOST": ("smtp", "host"),
    "NEWSLETTER_SMTP_PORT": ("smtp", "port"),
    "NEWSLETTER_DATABASE_URL": ("database", "url"),
    "NEWSLETTER_BASE_URL": ("site", "base_url"),
    "NEWSLETTER_MAILGUN_SIGNING_KEY": ("bounces", "webhooks", "mailgun_signing_key"),
    "NEWSLETTER_POSTMARK_PASSWORD": ("bounces", "webhooks", "postmark_password"),
}


class SiteConfig(Section):
    name: str = "Trending Papers"
    tagline: str = "The papers the research community is upvoting this week"
    base_url: str = "http://127.0.0.1:8000"
    postal_address: str = "Trending Papers, 1 Example Street, 00000 Example City"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://papers.example.org")
        return value.rstrip("/")


class DatabaseConfig(Section):
    url: str = "sqlite:///newsletter.db"


class DigestConfig(Section):
    max_papers: int = Field(default=10, ge=1, le=50)
    window_days: int = Field(default=7, ge=1, le=366)
    weekday: Weekday = "monday"
    time: dt.time = dt.time(8, 0)
    timezone: str = "UTC"
    skip_empty: bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.weekday)


class SourceConfig(Section):
    format: Literal["auto", "hf", "arxiv", "json", "jsonl", "page"] = "auto"
    url: str | None = None
    path: Path | None = None

    @model_validator(mode="after")
    def _exactly_one_location(self) -> SourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give exactly one of url or path")
        return self

    @property
    def location(self) -> str:
        return self.url if self.url is not None else str(self.path)


class TopicConfig(Section):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


SHIPPED_TOPICS = Path(__file__).parent.parent / "data" / "topics.yaml"


@functools.cache
def shipped_topics() -> tuple[TopicConfig, ...]:
    """The default `topics`, packaged so that they apply anywhere (no config.yaml needed)."""
    raw = yaml.safe_load(SHIPPED_TOPICS.read_text(encoding="utf-8"))
    return tuple(TopicConfig.model_validate(t) for t in raw["topics"])


class WebConfig(Section):
    """The public web app: abuse limits and request size."""

    subscribe_rate_per_hour: int = Field(default=20, ge=1)  # per client IP
    subscribe_burst: int = Field(default=5, ge=1)
    pending_expiry_days: int = Field(default=7, ge=1, le=365)
    confirmation_cooldown_hours: int = Field(default=24, ge=0)
    max_body_bytes: int = Field(default=20_480, ge=1024, le=10_000_000)
    home_papers: int = Field(default=10, ge=1, le=100)
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client. Nobody is
    # trusted by default: any client could otherwise pick its own address.
    trusted_proxies: tuple[str, ...] = ()
    # /admin: how long a login lasts, and failed logins allowed per client per hour.
    admin_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    admin_login_attempts_per_hour: int = Field(default=10, ge=1)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        parsed = []
        for value in values:
            try:
                if "/" in value:
                    parsed.append(str(ipaddress.ip_network(value.strip(), strict=False)))
                else:
                    parsed.append(str(ipaddress.ip_address(value.strip())))
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an IP address or network (like 10.0.0.1 or 10.0.0.0/8)"
                ) from None
        return tuple(parsed)


# argon2 (argon2-cffi) and bcrypt hashes, as `newsletter admin-password` prints them.
PASSWORD_HASH = re.compile(r"^\$(argon2(id|i|d)\$|2[aby]\$)\S+$")


class AdminConfig(Section):
    """One person who may log in to /admin."""

    email: str = Field(min_length=3, max_length=320)
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _a_hash(cls, value: str) -> str:
        if not PASSWORD_HASH.match(value):
            raise ValueError(
                "is not an argon2 or bcrypt hash: make one with `newsletter admin-password`"
            )
        return value


class ScheduleConfig(Section):
    """The weekly scheduler inside `serve` and `newsletter scheduler`."""

    # A run missed by less than this (a server down at 08:00, up at 08:05) still runs.
    misfire_grace_hours: float = Field(default=6.0, gt=0, le=72)
    drain_interval_seconds: int = Field(default=60, ge=1, le=3600)
    # Leader election: the leader renews every third of this; a standby takes over
    # at most this long after the leader died.
    lease_seconds: int = Field(default=30, ge=3, le=3600)
    # Plan this many hours before digest.time in digest.timezone; None: when that local
    # time first arrives anywhere (UTC+14), so every reader gets it at their own time.
    plan_ahead_hours: float | None = Field(default=None, ge=0, le=72)


class MatchingConfig(Section):
    """Relevance: weights and thresholds calibrated on tests/eval/interests.yaml."""

    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    semantic: Literal["auto", "on", "off"] = "auto"
    semantic_weight: float = Field(default=0.6, ge=0, le=1)
    lexical_weight: float = Field(default=0.4, ge=0, le=1)
    category_bonus: float = Field(default=0.15, ge=0, le=1)
    threshold: float = Field(default=0.37, gt=0, lt=1)
    lexical_threshold: float = Field(default=0.3, gt=0, lt=1)
    standout_threshold: float = Field(default=0.30, gt=0, lt=1)
    standout_sigma: float = Field(default=3.0, gt=0)
    relevance_weight: float = Field(default=0.4, ge=0, le=1)
    half_life_days: float = Field(default=3.5, gt=0)
    topic_similarity: float = Field(default=0.7, gt=0, le=1)
    example_threshold: float = Field(default=0.45, gt=0, lt=1)
    example_lexical_threshold: float = Field(default=0.2, gt=0, lt=1)
    example_alone_threshold: float = Field(default=0.35, gt=0, lt=1)
    example_alone_lexical_threshold: float = Field(default=0.06, gt=0, lt=1)
    fewer_threshold: float = Field(default=0.5, gt=0, le=1)


class ExamplesConfig(Section):
    """Example papers readers give: where the ones not yet stored are looked up."""

    arxiv_api: str = Field(default="https://export.arxiv.org/api/query", pattern=r"^https?://")
    max_per_reader: int = Field(default=50, ge=1, le=50)


class Settings(Section):
    site: SiteConfig = SiteConfig()
    database: DatabaseConfig = DatabaseConfig()
    smtp: SmtpConfig = SmtpConfig()
    sender: SenderConfig = SenderConfig()
    dkim: DkimConfig | None = None
    digest: DigestConfig = DigestConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    web: WebConfig = WebConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    sources: tuple[SourceConfig, ...] = ()
    topics: tuple[TopicConfig, ...] = Field(default_factory=shipped_topics)
    secret_key: str | None = Field(default=None, min_length=16)
    matching: MatchingConfig = MatchingConfig()
    examples: ExamplesConfig = ExamplesConfig()
    bounces: BouncesConfig = BouncesConfig()
    admins: tuple[AdminConfig, ...] = ()

    @field_validator("topics")
    @classmethod
    def _unique_slugs(cls, topics: tuple[TopicConfig, ...]) -> tuple[TopicConfig, ...]:
        seen: set[str] = set()
        for topic in topics:
            if topic.slug in seen:
                raise ValueError(f"topic slug {topic.slug!r} appears twice")
            seen.add(topic.slug)
        return topics

    @property
    def bounce_address(self) -> str:
        """bounces.address, else bounces@<the sender's domain>."""
        domain = self.sender.from_address.rpartition("@")[2]
        return self.bounces.address or f"bounces@{domain}"

    def topic(self, slug: str) -> TopicConfig | None:
        return next((t for t in self.topics if t.slug == slug), None)

    def with_overrides(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some keys of some sections replaced (used by demo and tests)."""
        data = self.model_dump()
        for name, values in sections.items():
            data[name] = {**(data.get(name) or {}), **values}
        return Settings.model_validate(data)


def resolve_path(cli_path: str | os.PathLike[str] | None) -> Path:
    """--config, else $NEWSLETTER_CONFIG, else ./config.yaml."""
    if cli_path:
        return Path(cli_path)
    env = os.environ.get("NEWSLETTER_CONFIG")
    return Path(env) if env else DEFAULT_PATH


def load_settings(path: Path, environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ) if environ is None else environ
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found (pass --config or set NEWSLETTER_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path}: not valid YAML{line}") from None
    if raw is None:
        # A file with nothing in it is more likely a mistake (a failed copy, the wrong
        # path) than a wish for the defaults.
        raise ConfigError(f"{path}: the config file is empty; give at least one section")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    _database_relative_to(raw, path.parent)
    applied = _apply_env(raw, environ)
    try:
        return parse_settings(raw, source=str(path))
    except ConfigError as exc:
        raise _blame_environment(exc, str(path), applied) from None


def parse_settings(raw: dict[str, Any], source: str = "config") -> Settings:
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_problem(exc)}") from None
    base = Path(source).parent if source != "config" else Path(".")
    return _relative_to(settings, base)


def _apply_env(raw: dict[str, Any], environ: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Put the environment's overrides into `raw`; returns {variable: keys} of those set."""
    applied: dict[str, tuple[str, ...]] = {}
    for variable, keys in ENV_OVERRIDES.items():
        value = environ.get(variable)
        if not value:
            continue
        node = raw
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
        applied[variable] = keys
    return applied


def _blame_environment(
    exc: ConfigError, source: str, applied: dict[str, tuple[str, ...]]
) -> ConfigError:
    """A bad value that came from an environment variable names that variable, not the
    file: the admin would search the file in vain."""
    problem = str(exc).removeprefix(f"{source}: ")
    for variable, keys in applied.items():
        if problem.startswith(".".join(keys) + ":"):
            return ConfigError(f"environment variable {variable}: {problem}")
    return exc


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if error["type"] == "missing":
        return f"missing required key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{key}: {message}"


def _database_relative_to(raw: dict[str, Any], base: Path) -> None:
    """A relative SQLite path written in the file is relative to the file, like every
    other path in it (an override from the environment stays relative to the working
    folder, where the shell that set it runs)."""
    section = raw.get("database")
    if not isinstance(section, dict):
        return
    url = section.get("url")
    if not isinstance(url, str) or not url.startswith("sqlite"):
        return
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # validation of the engine names the problem later
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    if Path(database).is_absolute():
        return
    located = parsed.set(database=str(base.resolve() / database))
    section["url"] = located.render_as_string(hide_password=False)


def _relative_to(settings: Settings, base: Path) -> Settings:
    """File paths in the config are relative to the config file, not the working dir."""
    sources = tuple(
        s
        if s.path is None or s.path.is_absolute()
        else s.model_copy(update={"path": base / s.path})
        for s in settings.sources
    )
    dkim = settings.dkim
    if dkim is not None and not dkim.private_key_path.is_absolute():
        dkim = dkim.model_copy(update={"private_key_path": base / dkim.private_key_path})
    return settings.model_copy(update={"sources": sources, "dkim": dkim})
