"""Email addresses: validated and normalized so one person is one subscriber."""

from __future__ import annotations

import pytest

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
