"""Signed ids in return addresses: short, lower-case safe, purpose-bound, unforgeable."""

from __future__ import annotations

import pytest

from newsletter.errors import InvalidInput, InvalidToken
from newsletter.mail.verp import ReturnAddresses, split_address, tagged
from newsletter.tokens import make_address_token, read_address_token

SECRET = "test-secret-key-0123456789"


def test_an_address_token_reads_back_its_id_in_any_case() -> None:
    token = make_address_token(SECRET, "bounce", 123)
    assert token.startswith("d123-") and token == token.lower()
    assert read_address_token(SECRET, "bounce", token) == 123
    assert read_address_token(SECRET, "bounce", token.upper()) == 123


def test_a_token_signs_at_least_80_bits() -> None:
    signature = make_address_token(SECRET, "bounce", 7).split("-")[1]
    assert len(signature) * 5 >= 80


def test_a_bounce_token_is_not_an_unsubscribe_token() -> None:
    token = make_address_token(SECRET, "bounce", 5)
    with pytest.raises(InvalidToken):
        read_address_token(SECRET, "unsubscribe-mail", token)
    # Even with the other purpose's letter in front, the signature differs.
    with pytest.raises(InvalidToken):
        read_address_token(SECRET, "unsubscribe-mail", "s" + token[1:])


@pytest.mark.parametrize(
    "forged",
    [
        lambda t: t.replace("d5-", "d6-"),  # another delivery's id, same signature
        lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # one character changed
        lambda t: t[:-2],  # cut short
        lambda t: "d5",  # no signature
        lambda t: "",
        lambda t: t + "x",
    ],
)
def test_a_changed_or_forged_token_is_refused(forged: object) -> None:
    token = make_address_token(SECRET, "bounce", 5)
    with pytest.raises(InvalidToken):
        read_address_token(SECRET, "bounce", forged(token))  # type: ignore[operator]


def test_another_key_signs_differently() -> None:
    token = make_address_token("another-secret-key-0123456789", "bounce", 5)
    with pytest.raises(InvalidToken):
        read_address_token(SECRET, "bounce", token)


def test_return_addresses_are_tagged_on_the_bounce_domain_within_64_characters() -> None:
    addresses = ReturnAddresses.of("Bounces@Papers.Example.org")
    biggest = make_address_token(SECRET, "bounce", 10**18 - 1)
    address = addresses.bounce_for(biggest)
    assert address == f"bounces+{biggest}@papers.example.org"
    assert len(address.partition("@")[0]) <= 64
    unsubscribe = addresses.unsubscribe_for(make_address_token(SECRET, "unsubscribe-mail", 9))
    assert unsubscribe.startswith("unsubscribe+s9-") and unsubscribe.endswith("@papers.example.org")


def test_a_local_part_over_64_characters_is_refused() -> None:
    with pytest.raises(InvalidInput, match="64"):
        tagged("b" * 40, "d1-" + "a" * 22, "example.org")


def test_a_recipient_is_taken_apart_case_insensitively() -> None:
    found = split_address("<Bounces+D12-ABC@Papers.Example.ORG>")
    assert found is not None
    assert (found.local, found.tag, found.domain) == ("bounces", "d12-abc", "papers.example.org")
    plain = split_address("bounces@papers.example.org")
    assert plain is not None and plain.tag is None
    assert split_address("no-at-sign") is None
    assert ReturnAddresses.of("bounces@papers.example.org").is_ours("X+y@PAPERS.example.org")
    assert not ReturnAddresses.of("bounces@papers.example.org").is_ours("bounces@example.org")
