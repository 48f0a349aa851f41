"""Email addresses: validated and normalized so one person is one subscriber."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from newsletter.errors import InvalidInput
from newsletter.mail.addresses import normalize_email


@pytest.mark.parametrize(
    "raw",
    ["Ada@Example.org", "ada@EXAMPLE.ORG", "  ada@example.org ", "ADA@example.org"],
)
def test_case_and_spacing_variants_are_one_address(raw: str) -> None:
    assert normalize_email(raw) == "ada@example.org"


def test_idn_domains_in_either_form_are_one_address() -> None:
    assert normalize_email("leser@bücher.example") == normalize_email("leser@xn--bcher-kva.example")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ada",
        "ada@",
        "@example.org",
        "ada@example",
        "ada@example.org\r\nBcc: x@example.org",
        "a b@example.org",
    ],
)
def test_invalid_addresses_are_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidInput, match="invalid email address"):
        normalize_email(raw)


TRICKY = [
    "Ada.Lovelace+news@Example.ORG",
    "a_b-c@sub.example.co.uk",
    "x@xn--bcher-kva.example",
    "x@BÜCHER.example",
    "a..b@example.org",
    ".a@example.org",
    "a.@example.org",
    "x@localhost",
    "x@example.local",
    "x@ex_ample.org",
    "x@-example.org",
    "x@example.123",
    "x@[127.0.0.1]",
    "x" * 64 + "@example.org",
    "x" * 65 + "@example.org",
    "x@" + "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + ".org",
    '"quoted"@example.org',
    "o'brien@example.org",
    "üser@example.org",
]


def _validator_says(raw: str) -> str | None:
    try:
        local, _, domain = validate_email(raw, check_deliverability=False).normalized.rpartition(
            "@"
        )
    except EmailNotValidError:
        return None
    return f"{local.lower()}@{domain.lower()}"


@pytest.mark.parametrize("raw", TRICKY)
def test_the_quick_path_for_plain_addresses_agrees_with_the_validator(raw: str) -> None:
    expected = _validator_says(raw)
    if expected is None:
        with pytest.raises(InvalidInput, match="invalid email address"):
            normalize_email(raw)
    else:
        assert normalize_email(raw) == expected
