"""Named errors. The CLI and web app turn these into one-line messages at the edge.

Imports nothing of newsletter, so every layer may raise them.
"""


class NewsletterError(Exception):
    """Base for errors a user can act on; str(error) is the one-line message."""


class ConfigError(NewsletterError):
    """config.yaml is missing, malformed or invalid."""


class InvalidInput(NewsletterError):
    """User-supplied data (an address, a file, a feed) cannot be used."""


class SourceError(InvalidInput):
    """A paper source could not be fetched or parsed."""


class SchemaMissing(NewsletterError):
    """The database has no schema, or an old one: `newsletter init` fixes it."""


class NotFound(NewsletterError):
    """A subscriber, edition or paper that was asked for does not exist."""


class InvalidToken(NewsletterError):
    """A signed link token is malformed, forged or made for another purpose."""


class ExpiredToken(InvalidToken):
    """A signed link token was genuine but is older than its purpose allows."""


class TemplateError(NewsletterError):
    """An email template is missing or cannot be compiled."""


class HeaderInjection(InvalidInput):
    """Text bound for an email header carries control characters (CR, LF, …)."""


class DeliveryError(NewsletterError):
    """A message could not be handed to the SMTP server."""


class RelayUnavailable(DeliveryError):
    """The SMTP relay cannot be reached or refuses everything; nothing was lost."""


class NothingToSend(NotFound):
    """A reader has no digest this week (inactive, paused, or nothing matched)."""


class MatcherUnavailable(NewsletterError):
    """matching.semantic is on but the sentence-embedding model cannot be loaded."""
