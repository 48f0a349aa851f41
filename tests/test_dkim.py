from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
import time_machine

from newsletter.errors import ConfigError
from newsletter.mail import dkim_gmp
from newsletter.mail.dkim import SIGNED_HEADERS
from newsletter.render.samples import sample_items
from tests.email_support import WEEK, composer, parse, parts

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A fresh RSA key and the DNS TXT record publishing its public half."""
    folder = tmp_path_factory.mktemp("dkim")
    private = folder / "dkim.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(private),
        ],
        check=True,
        capture_output=True,
    )
    public = subprocess.run(
        ["openssl", "pkey", "-in", str(private), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(record: bytes):  # type: ignore[no-untyped-def]
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"news._domainkey.papers.example.org."
        return record

    return dnsfunc


def signed_digest(private: Path) -> bytes:
    c = composer(
        dkim={"domain": "papers.example.org", "selector": "news", "private_key_path": str(private)}
    )
    return c.digest(subscriber_id=7, email="reader@example.org", items=sample_items(3), **WEEK).data


def test_a_signed_digest_verifies_against_the_published_key(key: tuple[Path, bytes]) -> None:
    private, record = key
    data = signed_digest(private)
    assert data.startswith(b"DKIM-Signature: ")
    assert dkim.verify(data, dnsfunc=dns_for(record))
    parsed = parse(data)
    parts(parsed)  # still a well-formed multipart/alternative
    signature = str(parsed["DKIM-Signature"]).replace(" ", "")
    signed = signature.split("h=", 1)[1].split(";", 1)[0].lower().split(":")
    assert set(signed) >= {h.decode() for h in SIGNED_HEADERS}
    assert "d=papers.example.org" in signature and "s=news" in signature


def test_changing_a_signed_header_or_the_body_breaks_the_signature(key: tuple[Path, bytes]) -> None:
    private, record = key
    data = signed_digest(private)
    forged_subject = data.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1)
    assert forged_subject != data
    assert not dkim.verify(forged_subject, dnsfunc=dns_for(record))
    head, body = data.split(b"\r\n\r\n", 1)
    forged_unsubscribe = head.replace(b"/unsubscribe/", b"/unsubscribx/", 1) + b"\r\n\r\n" + body
    assert not dkim.verify(forged_unsubscribe, dnsfunc=dns_for(record))
    assert not dkim.verify(
        head + b"\r\n\r\n" + body.replace(b"PGh0", b"PGh1", 1), dnsfunc=dns_for(record)
    )


def test_an_unreadable_or_bad_key_fails_when_the_composer_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        signed_digest(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="dkim"):
        signed_digest(bad)


def test_signatures_are_byte_for_byte_what_plain_dkimpy_makes(key: tuple[Path, bytes]) -> None:
    private, _ = key
    c = composer(
        dkim={"domain": "papers.example.org", "selector": "news", "private_key_path": str(private)}
    )
    when = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    with time_machine.travel(when, tick=False):
        message = c.digest(
            subscriber_id=7, email="reader@example.org", items=sample_items(3), now=when, **WEEK
        )
        unsigned = message.data.split(b"\r\n", 1)[1]
        while unsigned.startswith((b" ", b"\t")):  # the signature header's folded lines
            unsigned = unsigned.split(b"\r\n", 1)[1]
        reference = dkim.sign(
            unsigned,
            b"news",
            b"papers.example.org",
            private.read_bytes(),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
        )
    assert unsigned.startswith(b"From: ")
    assert message.data == bytes(reference) + unsigned


def test_without_gmpy2_plain_dkimpy_signs_the_same_bytes(
    key: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    private, record = key
    with time_machine.travel(datetime(2026, 3, 16, 8, 0, tzinfo=UTC), tick=False):
        fast = signed_digest(private)
        monkeypatch.setattr(dkim_gmp, "gmpy2", None)
        plain = signed_digest(private)
    assert plain == fast and dkim.verify(plain, dnsfunc=dns_for(record))
