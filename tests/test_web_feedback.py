"""The email's "More / Fewer like this" links and the preferences page's example papers:
signed and bound to one reader and paper, nothing changes on a GET, all undoable."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from httpx import Response

from newsletter.mail.capture import CaptureServer
from newsletter.readers import examples
from newsletter.tokens import make_cards_token, make_token
from tests.http_server import Answer, scripted_server
from tests.test_examples import EMPTY_FEED
from tests.test_web_pages import sent_digest
from tests.web_support import Rig, csrf_of, rig, tampered


@pytest.fixture
def web(tmp_path: Path, smtp_server: CaptureServer) -> Iterator[Rig]:
    with rig(tmp_path, smtp_server) as made:
        yield made


def feedback_links(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"more": [], "fewer": []}
    for direction, path in re.findall(r"(More|Fewer) like this: https?://[^/\s]+(/\S+)", text):
        found[direction.lower()].append(path)
    return found


def marks(web: Rig, sid: int) -> list[tuple[str, str, str]]:
    return [(p.title, p.feeling, p.origin) for p in examples.felt_papers(web.context, sid)]


def test_every_card_of_a_digest_carries_its_own_more_and_fewer_links(web: Rig) -> None:
    _, text = sent_digest(web, "ada@example.org", ["llms"])
    links = feedback_links(text)
    assert len(links["more"]) == len(links["fewer"]) >= 1
    assert all(m.endswith("/more") for m in links["more"])
    assert len(set(links["more"])) == len(links["more"])  # each link names its paper


def test_a_get_of_a_feedback_link_shows_one_button_and_changes_nothing(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = feedback_links(text)["more"][0]
    page = web.client.get(path)
    assert page.status_code == 200
    assert "Large language model tricks" in page.text and "More like this" in page.text
    assert web.client.head(path).status_code == 200  # scanners' HEADs change nothing either
    assert marks(web, sid) == []


def test_the_button_records_it_and_the_preferences_page_shows_it_with_undo(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = feedback_links(text)["more"][0]
    page = web.client.get(path)
    done = web.client.post(path, data={"csrf_token": csrf_of(page)})
    assert done.status_code == 200 and "More papers like" in done.text
    assert marks(web, sid) == [("Large language model tricks", "like", "email")]
    preferences = re.search(r'href="(/preferences/[^"]+)"', done.text)
    assert preferences
    prefs = web.client.get(preferences.group(1))
    assert "Large language model tricks" in prefs.text and "Example" in prefs.text
    forget = re.search(r'action="(/preferences/[^"]+/forget)"', prefs.text)
    assert forget
    undone = web.client.post(
        forget.group(1), data={"csrf_token": csrf_of(prefs)}, follow_redirects=False
    )
    assert undone.status_code == 303
    assert marks(web, sid) == []


def test_fewer_from_the_email_is_recorded_as_fewer(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = feedback_links(text)["fewer"][0]
    page = web.client.get(path)
    assert "Fewer like this" in page.text
    web.client.post(path, data={"csrf_token": csrf_of(page)})
    assert marks(web, sid) == [("Large language model tricks", "fewer", "email")]


def test_a_feedback_post_without_the_forms_csrf_token_is_refused(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = feedback_links(text)["more"][0]
    assert web.client.post(path, data={"csrf_token": "forged"}).status_code == 403
    assert marks(web, sid) == []


def test_a_tampered_or_foreign_feedback_link_is_not_valid(web: Rig) -> None:
    sid, text = sent_digest(web, "ada@example.org", ["llms"])
    path = feedback_links(text)["more"][0]
    _, _, token, paper, _ = path.split("/")
    secret = web.context.secret_key
    for bad in (
        f"/feedback/{tampered(token)}/{paper}/more",
        f"/feedback/{make_token(secret, 'preferences', sid)}/{paper}/more",  # another purpose
        f"/feedback/{make_cards_token(secret, sid, [987654])}/987654/more",  # no such paper
        f"/feedback/{token}/{int(paper) + 1000}/more",  # a paper this digest did not carry
        f"/feedback/{token}/{paper}/sideways",
        f"/feedback/garbage/{paper}/more",
    ):
        assert web.client.get(bad).status_code == 404, bad


def test_example_papers_typed_on_the_preferences_page_are_refused_when_unknown(
    web: Rig,
) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])
    path = f"/preferences/{make_token(web.context.secret_key, 'preferences', sid)}"
    page = web.client.get(path)
    answer = web.client.post(
        f"{path}/papers", data={"csrf_token": csrf_of(page), "papers": "not a paper"}
    )
    assert answer.status_code == 400 and "not an arXiv id or paper URL" in answer.text
    assert marks(web, sid) == []


def test_a_stored_paper_typed_on_the_preferences_page_becomes_an_example(web: Rig) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])
    path = f"/preferences/{make_token(web.context.secret_key, 'preferences', sid)}"
    page = web.client.get(path)
    answer = web.client.post(
        f"{path}/papers",
        data={"csrf_token": csrf_of(page), "papers": "https://arxiv.org/abs/2501.01001v2"},
    )
    assert answer.status_code == 200 and "Added 1 example paper." in answer.text
    assert marks(web, sid) == [("Image segmentation", "like", "given")]


BIBTEX = b"""@article{seg2025,
  title = {{Image segmentation}},
  eprint = {2501.01001},
  archivePrefix = {arXiv},
}
"""


def upload(web: Rig, path: str, csrf: str, data: bytes) -> Response:
    return web.client.post(
        f"{path}/bibtex",
        data={"csrf_token": csrf},
        files={"bibtex": ("library.bib", data, "text/x-bibtex")},
    )


def test_an_uploaded_bibtex_file_gives_example_papers(web: Rig) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])
    path = f"/preferences/{make_token(web.context.secret_key, 'preferences', sid)}"
    csrf = csrf_of(web.client.get(path))
    padded = BIBTEX + b"% " + b"x" * 30_000 + b"\n"  # larger than a form may be
    answer = upload(web, path, csrf, padded)
    assert answer.status_code == 200 and "Added 1 example paper." in answer.text
    assert marks(web, sid) == [("Image segmentation", "like", "given")]


def test_a_bibtex_upload_is_refused_when_forged_unreadable_or_too_large(web: Rig) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])
    path = f"/preferences/{make_token(web.context.secret_key, 'preferences', sid)}"
    csrf = csrf_of(web.client.get(path))
    assert upload(web, path, "forged", BIBTEX).status_code == 403
    unreadable = upload(web, path, csrf, b"\x00\x01 not bibtex")
    assert unreadable.status_code == 400 and "has no BibTeX entries" in unreadable.text
    assert upload(web, path, csrf, b"%" * 2_100_000).status_code == 413
    assert marks(web, sid) == []


def test_a_feedback_link_with_a_compressed_token_works(web: Rig) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])  # stores papers 1 to 3
    ids = [1, 2, 3] * 20  # repetitive: itsdangerous compresses it ("." in front)
    token = make_cards_token(web.context.secret_key, sid, ids)
    assert token.startswith(".")
    assert web.client.get(f"/feedback/{token}/2/more").status_code == 200


def test_library_entries_arxiv_does_not_have_are_named_as_left_out(web: Rig) -> None:
    sid, _ = sent_digest(web, "ada@example.org", ["llms"])
    with scripted_server() as arxiv:
        arxiv.route(
            "/api/query?search_query=ti%3A%22A+book+on+gardening%22&max_results=3",
            Answer(body=EMPTY_FEED),
        )
        web.context.settings = web.context.settings.with_overrides(
            examples={"arxiv_api": f"{arxiv.base_url}/api/query"}
        )
        path = f"/preferences/{make_token(web.context.secret_key, 'preferences', sid)}"
        csrf = csrf_of(web.client.get(path))
        library = BIBTEX + b"@book{g, title={A book on gardening}}\n"
        answer = upload(web, path, csrf, library)
    assert answer.status_code == 200
    text = " ".join(answer.text.split())
    assert "Added 1 example paper. 1 entry is not on arXiv, and left out:" in text
    assert "A book on gardening" in text
    assert marks(web, sid) == [("Image segmentation", "like", "given")]
