"""The whole loop: a digest sent through the real pipeline comes back as a bounce and
an abuse report by mail to `newsletter inbound`, and the admin sees both on /admin."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.config import Settings
from newsletter.runtime import Runtime
from newsletter.store import db
from newsletter.store.models import Edition
from newsletter.web import create_app
from tests.admin_support import ADMIN, log_in, password_hash, stats_of
from tests.bounce_samples import arf_for, dsn_for, sample
from tests.inbound_support import Running, deliver, inbound_server
from tests.test_inbound import Site, site  # noqa: F401  (the fixture: a digest sent to five)


@pytest.fixture
def inbound(site: Site) -> Iterator[Running]:  # noqa: F811
    with inbound_server(site.context) as running:
        yield running


def admin_client(context: Runtime) -> TestClient:
    data = context.settings.model_dump()
    data["admins"] = [{"email": ADMIN, "password_hash": password_hash()}]
    data["site"]["base_url"] = "http://testserver"
    return TestClient(create_app(Runtime(Settings.model_validate(data))))


def test_a_bounce_and_a_complaint_by_mail_show_on_the_admin_dashboard(
    site: Site,  # noqa: F811
    inbound: Running,
) -> None:
    bounced, complained = "reader00000@example.org", "reader00004@example.org"
    first, second = site.sent[bounced], site.sent[complained]
    dsn = dsn_for(first.data, bounced, msg_id="loop-dsn@mx.example.org")
    assert deliver(inbound.port, [first.mail_from], dsn).code == 250
    arf = arf_for(second.data, msg_id="loop-arf@fbl.example.net")
    assert deliver(inbound.port, ["bounces@papers.example.org"], arf).code == 250
    # An auto-reply is none of these: kept, and listed for the admin.
    reply = sample("vacation.eml")
    assert deliver(inbound.port, ["bounces@papers.example.org"], reply).code == 250

    statuses = site.statuses()
    assert statuses[complained] == "unsubscribed" and statuses[bounced] == "active"
    with db.transaction(site.context.sessions) as session:
        key = session.scalar(select(Edition.key))
    with admin_client(site.context) as client:
        assert log_in(client).status_code == 303
        page = client.get("/admin")
    assert page.status_code == 200
    stats = stats_of(page)
    # Four digests were accepted; the relay refused a fifth (a hard bounce in the
    # session), the mail brought a second hard bounce and a complaint.
    assert stats["returns.sent"] == "4"
    assert stats["returns.bounce_rate"] == "50.00%"
    assert stats["returns.complaint_rate"] == "25.00%"
    assert stats[f"edition.{key}.hard_bounces"] == "2"
    assert stats[f"edition.{key}.complaints"] == "1"
    assert stats["readers.unsubscribed"] == "1"
    [kept] = re.findall(r'<tr data-inbound="\d+">(.*?)</tr>', page.text, re.S)
    assert "names no failed delivery" in kept and "bounces@papers.example.org" in kept
