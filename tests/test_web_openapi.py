"""The published OpenAPI schema, fuzzed in-process with schemathesis against the real app.

The app runs over a migrated SQLite store and mails a real SMTP capture server. The first
test sends what the schema allows and what it forbids, as any client would (so forms
without the CSRF cookie); the second sends only schema-valid forms carrying a valid CSRF
pair and real signed links, so the services behind the forms run too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from newsletter.errors import InvalidInput
from newsletter.mail.addresses import normalize_email
from newsletter.mail.capture import CaptureServer
from newsletter.readers import subscriptions
from newsletter.runtime import Context
from newsletter.tokens import make_token
from newsletter.web import create_app
from newsletter.web.security import CSRF_COOKIE, CSRF_FIELD, Csrf
from tests.conftest import make_settings
from tests.web_support import add_edition, add_papers, web_context

# Bounded and repeatable: a fixed number of examples per operation, no randomness.
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


FUZZ_WEB = {"subscribe_rate_per_hour": 1_000_000, "subscribe_burst": 1_000_000}


class Forward:
    """An ASGI app that hands every request to `target`.

    Schemathesis builds its tests from a schema loaded at import time (its lazy fixture
    loader does not run on this pytest), while the real store and SMTP server exist only
    inside a fixture: the schema is loaded from an app over the same settings that never
    touches its database, and the fixture then points this at the real app.
    """

    def __init__(self, target: Any) -> None:
        self.target = target

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.target(scope, receive, send)


def _accepted_address(address: str) -> bool:
    try:
        normalize_email(address)
    except InvalidInput:
        return False
    return True


# `format: email` cannot say which addresses email-validator refuses (reserved domains such
# as .test); the schema's description does, and the 400 answer is checked in
# test_web_subscribe. Valid-data tests draw the addresses the app documents it accepts.
schemathesis.openapi.format("email", st.emails().filter(_accepted_address))

SCHEMA_APP = create_app(Context(make_settings("sqlite://", web=FUZZ_WEB)))
APP = Forward(SCHEMA_APP)


def _schema(modes: list[GenerationMode]) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
    schema.config.generation.update(modes=modes, deterministic=True)
    return schema


any_request = _schema([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
valid_form = _schema([GenerationMode.POSITIVE]).include(method="POST")


@dataclass
class Site:
    context: Context
    app: Any
    smtp: CaptureServer
    reader: int  # an active subscriber whose links the valid-form test follows


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with CaptureServer() as smtp:
        context = web_context(tmp_path_factory.mktemp("openapi"), smtp, **FUZZ_WEB)
        try:
            add_edition(context, "2026-W10", add_papers(context, 3))
            reader = subscriptions.subscribe(
                context, "reader@example.org", ["llms"], confirmed=True
            ).subscriber.id
            app = create_app(context)
            # the schema the tests were built from is the one this app serves
            assert app.openapi() == SCHEMA_APP.openapi()
            APP.target = app
            yield Site(context, app, smtp, reader)
        finally:
            APP.target = SCHEMA_APP
            context.close()


@any_request.parametrize()
@FUZZ
def test_every_answer_matches_the_schema(case: Case, site: Site) -> None:
    case.call_and_validate()


@valid_form.parametrize()
@FUZZ
def test_valid_forms_with_csrf_and_real_links_are_accepted(case: Case, site: Site) -> None:
    cookie = Csrf.new_cookie()
    if isinstance(case.body, dict):
        case.body[CSRF_FIELD] = Csrf(site.context.secret_key).field_for(cookie)
    purpose = case.operation.path.split("/")[1]
    if "token" in (case.path_parameters or {}):
        case.path_parameters["token"] = make_token(site.context.secret_key, purpose, site.reader)
    response = case.call_and_validate(cookies={CSRF_COOKIE: cookie})
    assert response.status_code in (200, 303), response.text[:500]


def test_the_schema_publishes_the_form_rules_from_config(site: Site) -> None:
    schema = site.app.openapi()
    body = schema["paths"]["/subscribe"]["post"]["requestBody"]["content"]
    form = body["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["topic"]["items"]["enum"] == ["llms", "vision", "memory"]
    assert form["properties"]["email"]["format"] == "email"
    assert form["additionalProperties"] is False and "csrf_token" in form["required"]
    links = schema["paths"]["/confirm/{token}"]["get"]
    assert {"200", "404"} <= set(links["responses"])
    assert schema["components"]["securitySchemes"]["csrfCookie"]["in"] == "cookie"


def test_a_405_names_every_method_of_the_path(site: Site) -> None:
    from fastapi.testclient import TestClient

    with TestClient(site.app) as client:
        answer = client.request("OPTIONS", "/confirm/abc.def.ghi")
    assert answer.status_code == 405 and answer.headers["allow"] == "GET, HEAD, POST"


def test_a_schema_valid_form_never_passes_the_body_limit(site: Site) -> None:
    forms = site.app.state.web.forms
    limit = site.context.settings.web.max_body_bytes
    widest = "\U0001f600"  # four UTF-8 bytes, twelve once percent-encoded
    fields = {
        CSRF_FIELD: "a" * 200,
        "email": widest * 254,
        "interests": widest * forms.interests_max,
        "timezone": widest * 64,
        "website": widest * 100,
    }
    from urllib.parse import urlencode

    size = len(urlencode({**fields, "topic": ["memory"] * 3}, doseq=True))
    assert size <= limit
    assert forms.interests_max >= 800  # the default limit leaves room for four full interests
