from __future__ import annotations

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer

from newsletter.errors import ExpiredToken, InvalidToken, NewsletterError
from newsletter.tokens import make_cards_token, make_token, read_cards_token, read_token

SECRET = "test-secret-key-0123456789"


@pytest.mark.parametrize("purpose", ["confirm", "unsubscribe", "preferences"])
def test_a_token_reads_back_the_subscriber_for_its_purpose(purpose: str) -> None:
    token = make_token(SECRET, purpose, 42)
    assert read_token(SECRET, purpose, token) == 42


def test_an_unsubscribe_token_cannot_confirm_and_vice_versa() -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, "confirm", make_token(SECRET, "unsubscribe", 7))
    with pytest.raises(InvalidToken):
        read_token(SECRET, "unsubscribe", make_token(SECRET, "confirm", 7))
    with pytest.raises(InvalidToken):
        read_token(SECRET, "preferences", make_token(SECRET, "unsubscribe", 7))


def test_a_token_signed_with_another_key_is_rejected() -> None:
    token = make_token("another-secret-key-0123456789", "unsubscribe", 7)
    with pytest.raises(InvalidToken):
        read_token(SECRET, "unsubscribe", token)


@pytest.mark.parametrize("token", ["", "garbage", "NQ.awguSg.Jpk5zfYzP3zHpp9yz-KdY0hsUnc"])
def test_malformed_or_forged_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, "unsubscribe", token)


def test_a_tampered_token_is_rejected() -> None:
    token = make_token(SECRET, "unsubscribe", 7)
    payload, rest = token.split(".", 1)
    forged = f"{make_token(SECRET, 'unsubscribe', 8).split('.', 1)[0]}.{rest}"
    assert forged != token and payload
    with pytest.raises(InvalidToken):
        read_token(SECRET, "unsubscribe", forged)


def test_an_old_token_expires_when_a_max_age_is_given() -> None:
    with time_machine.travel("2026-03-01 12:00:00+00:00", tick=False):
        token = make_token(SECRET, "confirm", 3)
    with time_machine.travel("2026-03-04 12:00:00+00:00", tick=False):
        assert read_token(SECRET, "confirm", token) == 3
        assert read_token(SECRET, "confirm", token, max_age=4 * 86400) == 3
        with pytest.raises(ExpiredToken) as caught:
            read_token(SECRET, "confirm", token, max_age=86400)
    assert isinstance(caught.value, InvalidToken)
    assert "expired" in str(caught.value)


def test_an_unknown_purpose_is_a_named_error() -> None:
    with pytest.raises(NewsletterError, match="purpose"):
        make_token(SECRET, "delete-everything", 1)


# Made on 2026-03-01 12:00 UTC: links in emails already sent must keep working.
SENT_BEFORE = {
    "unsubscribe": "NDI0Mg.aaQqQA.9_MXrHRQkKqeBtlFL-9FTOxaQtE",
    "preferences": "NDI0Mg.aaQqQA.8ZnQSbvevlM-MkeJ6_-FXPglXd8",
    "confirm": "NDI0Mg.aaQqQA.kyt9Nq-5U7F6bDcb9fHs_E5ODLs",
}


@pytest.mark.parametrize("purpose", sorted(SENT_BEFORE))
def test_tokens_in_emails_sent_before_still_work(purpose: str) -> None:
    assert read_token(SECRET, purpose, SENT_BEFORE[purpose]) == 4242
    with time_machine.travel("2026-03-01 12:00:00+00:00", tick=False):
        assert make_token(SECRET, purpose, 4242) == SENT_BEFORE[purpose]


@pytest.mark.parametrize(
    "subscriber_id",
    [
        0,
        1,
        7,
        4242,
        99_999_999,
        999_999_999,
        1_000_000_000,
        1_111_111_111_111,
        2**63 - 1,
        -5,
        -99_999_999,
    ],
)
def test_tokens_are_exactly_what_the_itsdangerous_serializer_makes(subscriber_id: int) -> None:
    # Long ids compress (itsdangerous marks them with a leading dot); short ones do not.
    for purpose in ("confirm", "unsubscribe", "preferences"):
        reference = URLSafeTimedSerializer(SECRET, salt=f"newsletter.{purpose}")
        with time_machine.travel("2026-03-01 12:00:00+00:00", tick=False):
            token = make_token(SECRET, purpose, subscriber_id)
            assert token == reference.dumps(subscriber_id)
        assert read_token(SECRET, purpose, token) == subscriber_id


@pytest.mark.parametrize("papers", [[], [1], [5, 6, 7], list(range(1000, 1030)), [111_111] * 12])
def test_feedback_tokens_are_exactly_what_the_itsdangerous_serializer_makes(
    papers: list[int],
) -> None:
    reference = URLSafeTimedSerializer(SECRET, salt="newsletter.feedback")
    with time_machine.travel("2026-03-01 12:00:00+00:00", tick=False):
        token = make_cards_token(SECRET, 4242, papers)
        assert token == reference.dumps([4242, papers])
    assert read_cards_token(SECRET, token) == (4242, frozenset(papers))
