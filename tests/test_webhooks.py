"""POST /webhooks/<provider>: each relay's documented bounce and complaint reports, signed
as that relay signs them, through the real app over HTTP into a real SQLite store where
a reader has been sent a digest. bounce_after is 2 here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import parse_settings
from newsletter.errors import ConfigError
from newsletter.mail.verp import ReturnAddresses
from newsletter.returns.webhooks import Unavailable
from newsletter.returns.webhooks.receive import Relays
from newsletter.returns.webhooks.ses import MAX_FETCH_BYTES, https_get
from newsletter.runtime import Runtime
from newsletter.tokens import make_address_token
from tests.http_server import Answer, scripted_server
from tests.webhook_rig import PROVIDERS, READER, Hooks, open_hooks, webhook_settings
from tests.webhook_support import Prepared, SendGridRelay, SesRelay, mailgun_sign, sns_sign


@pytest.fixture
def hooks(tmp_path: Path) -> Iterator[Hooks]:
    with open_hooks(tmp_path) as rig:
        yield rig


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hard_bounces_count_toward_bounce_after_and_bounce_the_reader_at_the_limit(
    hooks: Hooks, provider: str
) -> None:
    first = hooks.post(provider, "hard")
    assert first.status_code == 200, first.text
    assert first.json()["recorded"] == 1
    assert hooks.reader() == ("active", 1)
    assert hooks.events() == [("hard_bounce", provider, hooks.delivery_id)]

    assert hooks.post(provider, "hard", twin=1).status_code == 200
    assert hooks.reader() == ("bounced", 2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_complaint_unsubscribes_the_reader(hooks: Hooks, provider: str) -> None:
    response = hooks.post(provider, "complaint")
    assert response.status_code == 200, response.text
    assert hooks.reader() == ("unsubscribed", 0)
    assert hooks.events() == [("complaint", provider, hooks.delivery_id)]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_soft_bounce_is_recorded_but_not_counted(hooks: Hooks, provider: str) -> None:
    for twin in range(3):
        assert hooks.post(provider, "soft", twin=twin).status_code == 200
    assert hooks.reader() == ("active", 0)
    assert [kind for kind, _, _ in hooks.events()] == ["soft_bounce"] * 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_same_report_sent_again_counts_once(hooks: Hooks, provider: str) -> None:
    assert hooks.post(provider, "hard").json()["recorded"] == 1
    again = hooks.post(provider, "hard")  # a retry: same event, signed again
    assert again.status_code == 200
    assert again.json() | {"provider": provider} == {
        "provider": provider,
        "events": 1,
        "recorded": 0,
        "duplicates": 1,
        "unknown": 0,
    }
    assert hooks.reader() == ("active", 1)
    assert len(hooks.events()) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_without_its_secret_answers_404(
    hooks: Hooks, provider: str, tmp_path: Path
) -> None:
    bare = Runtime(webhook_settings(f"sqlite:///{tmp_path / 'hooks.db'}", None))
    hooks.client.app.state.relays = Relays(bare, fetch=hooks.sns)  # type: ignore[attr-defined]
    try:
        response = hooks.post(provider, "hard")
    finally:
        bare.close()
    assert response.status_code == 404
    assert hooks.events() == [] and hooks.reader() == ("active", 0)


def test_an_unknown_provider_answers_404_and_get_is_not_allowed(hooks: Hooks) -> None:
    assert hooks.client.post("/webhooks/sparkpost", content=b"[]").status_code == 404
    answer = hooks.client.get("/webhooks/ses")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reports_about_strangers_are_answered_200_and_ignored(hooks: Hooks, provider: str) -> None:
    prepared = hooks.relays[provider].request("hard")
    body = prepared.body.replace(READER.encode(), b"stranger@example.net")
    body = body.replace(b"2026-W48.1.0123456789ab", b"2026-W48.9.fedcba987654")
    if provider in ("ses", "sendgrid"):  # their signatures cover the body: sign it again
        prepared = _resigned(hooks, provider, body)
    else:
        prepared = Prepared(provider, body, prepared.headers)
    response = prepared.post(hooks.client)
    assert response.status_code == 200, response.text
    assert response.json()["unknown"] == 1 and response.json()["recorded"] == 0
    assert hooks.events() == []


@pytest.mark.parametrize("provider", ["ses", "mailgun"])
def test_a_report_carrying_our_verp_sender_names_its_delivery_whatever_the_address(
    hooks: Hooks, provider: str
) -> None:
    """SES and Mailgun echo the envelope sender: the delivery signed into it decides,
    even when the address reported is an alias or forward of the reader's."""
    token = make_address_token(hooks.context.secret_key, "bounce", hooks.delivery_id)
    verp = ReturnAddresses.of("bounces@papers.example.org").bounce_for(token)
    prepared = hooks.relays[provider].request("hard")
    body = prepared.body.replace(READER.encode(), b"alias@forward.example.net")
    body = body.replace(b"2026-W48.1.0123456789ab", b"2026-W48.9.fedcba987654")
    assert b'"bounces@papers.example.org"' in body.replace(b'\\"', b'"')
    body = body.replace(b"bounces@papers.example.org", verp.encode())
    if provider == "ses":
        prepared = _resigned(hooks, provider, body)
    else:
        prepared = Prepared(provider, body, prepared.headers)
    response = prepared.post(hooks.client)
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 1
    assert hooks.events() == [("hard_bounce", provider, hooks.delivery_id)]
    assert hooks.reader() == ("active", 1)
    # A forged token names nobody: the report is about a stranger again.
    forged = body.replace(verp.encode(), verp.replace(token[-4:], "aaaa").encode())
    if provider == "ses":
        again = _resigned(hooks, provider, forged)
    else:  # a new signature: Mailgun's tokens are used once
        payload = mailgun_sign(json.loads(forged))
        again = Prepared(provider, json.dumps(payload).encode(), prepared.headers)
    assert again.post(hooks.client).json()["unknown"] == 1


def _resigned(hooks: Hooks, provider: str, body: bytes) -> Prepared:
    relay = hooks.relays[provider]
    if isinstance(relay, SendGridRelay):
        return Prepared(provider, body, relay.key.headers(body))
    assert isinstance(relay, SesRelay)
    message = json.loads(body)
    sns_sign(message, relay.key)
    return Prepared(provider, json.dumps(message).encode(), {"content-type": "text/plain"})


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_body_that_is_not_json_is_refused_with_400(hooks: Hooks, provider: str) -> None:
    relay = hooks.relays[provider]
    headers = relay.request("hard").headers
    if isinstance(relay, SendGridRelay):
        headers = relay.key.headers(b"{not json")  # signed junk is still junk
    response = Prepared(provider, b"{not json", headers).post(hooks.client)
    assert response.status_code == 400
    assert "traceback" not in response.text.lower()
    assert hooks.events() == []


def test_a_large_sendgrid_batch_is_accepted(hooks: Hooks) -> None:
    relay = hooks.relays["sendgrid"]
    assert isinstance(relay, SendGridRelay)
    filler = [
        {"email": f"r{i}@example.net", "event": "delivered", "sg_event_id": f"d{i}"}
        for i in range(4000)
    ]
    events = json.loads(relay.request("hard").body) + filler
    body = json.dumps(events).encode()
    assert len(body) > 200_000  # ten times the limit of a form post
    response = Prepared("sendgrid", body, relay.key.headers(body)).post(hooks.client)
    assert response.status_code == 200, response.text
    assert hooks.reader() == ("active", 1)


def test_a_body_over_five_megabytes_is_refused_with_413(hooks: Hooks) -> None:
    body = b"[" + b" " * 5_000_000 + b"]"
    response = hooks.client.post("/webhooks/sendgrid", content=body)
    assert response.status_code == 413
    assert hooks.events() == []


def test_the_sns_fetcher_reads_an_answer_and_refuses_errors_redirects_and_floods() -> None:
    with scripted_server() as server:
        pem = server.route("/cert.pem", Answer(200, b"-----BEGIN CERTIFICATE-----"))
        assert https_get(pem) == b"-----BEGIN CERTIFICATE-----"
        moved = server.route("/moved.pem", Answer(302, b"", {"Location": pem}))
        missing = server.route("/missing.pem", Answer(404, b"no"))
        flood = server.route("/flood.pem", Answer(200, b"x" * (MAX_FETCH_BYTES + 1)))
        for url in (moved, missing, flood):
            with pytest.raises(Unavailable):
                https_get(url)
        assert server.hits("/cert.pem") == 1  # the redirect was not followed


@pytest.mark.parametrize(
    ("webhooks", "problem"),
    [
        ({"ses_topic_arns": ["ses-bounces"]}, "ses_topic_arns"),
        ({"postmark_password": "correct-horse-battery"}, "postmark_username and postmark_pass"),
        ({"sendgrid_public_key": "bm90IGEga2V5IGF0IGFsbCwganVzdCB0ZXh0"}, "sendgrid_public_key"),
    ],
)
def test_webhook_settings_are_checked_on_load(webhooks: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_settings({"bounces": {"webhooks": webhooks}})
