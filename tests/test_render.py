from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from newsletter.errors import TemplateError
from newsletter.render import KINDS, NoticeView, Renderer, default_templates_dir
from newsletter.render.content import DigestItem, DigestView, Recipient, SiteView
from newsletter.render.filters import author_list, cut, excerpt, week_range
from newsletter.render.samples import sample_items
from tests.email_support import HOSTILE, hostile_items, longest_items

SITE = SiteView("Trending Papers", "What researchers upvote", "https://p.example.org", "1 Main St")
RECIPIENT = Recipient(
    "reader@example.org",
    "https://p.example.org/unsubscribe/U",
    "https://p.example.org/preferences/P",
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def digest(items: tuple = (), recipient: Recipient = RECIPIENT) -> DigestView:
    return DigestView(
        site=SITE,
        recipient=recipient,
        edition_key="2026-W11",
        week_start=date(2026, 3, 9),
        week_end=date(2026, 3, 15),
        items=items,
        archive_url="https://p.example.org/archive/2026-W11",
        topics=("Memory",),
    )


def test_long_author_lists_show_the_first_three_and_how_many_more() -> None:
    assert author_list(("A", "B", "C", "D", "E", "F", "G")) == "A, B, C +4"
    assert author_list(("A", "B", "C", "D")) == "A, B, C, D"
    assert author_list(("A",)) == "A"
    assert author_list(()) == ""


def test_excerpts_end_at_a_sentence_when_one_is_near() -> None:
    text = "First sentence is here. " * 30
    assert cut(text, 100) == " ".join(["First sentence is here."] * 4)


def test_excerpts_without_a_sentence_end_cut_at_a_word_with_an_ellipsis() -> None:
    text = "word " * 100
    result = cut(text, 52)
    assert result.endswith("word…") and len(result) <= 53
    assert cut("short text", 50) == "short text"


def test_the_short_summary_wins_over_the_abstract() -> None:
    paper = sample_items(1)[0].paper
    assert excerpt(replace(paper, summary="A crisp summary.")) == "A crisp summary."
    assert excerpt(replace(paper, summary=None)).startswith(paper.abstract[:40])


def test_weeks_read_naturally_across_months_and_years() -> None:
    assert week_range(date(2026, 3, 9), date(2026, 3, 15)) == "Mar 9 – 15, 2026"
    assert week_range(date(2026, 3, 30), date(2026, 4, 5)) == "Mar 30 – Apr 5, 2026"
    assert week_range(date(2026, 12, 28), date(2027, 1, 3)) == "Dec 28, 2026 – Jan 3, 2027"


def notice(kind: str) -> NoticeView:
    action = "https://p.example.org/confirm/C" if kind == "confirm" else ""
    return NoticeView(site=SITE, recipient=RECIPIENT, action_url=action, topics=("Memory",))


@pytest.mark.parametrize(
    "view",
    [digest(sample_items(10)), digest(()), digest(hostile_items(3)), digest(longest_items(2))],
    ids=["ten-papers", "quiet-week", "hostile", "longest"],
)
def test_compiled_once_html_equals_mjml_compiled_per_email(
    renderer: Renderer, view: DigestView
) -> None:
    once = renderer.digest(view).html
    per_email = renderer.html_per_email("digest", renderer.context_for(view))
    assert once == per_email


@pytest.mark.parametrize("kind", ["confirm", "welcome", "goodbye"])
def test_notices_compiled_once_equal_mjml_per_email(renderer: Renderer, kind: str) -> None:
    view = notice(kind)
    once = renderer.notice(kind, view).html  # type: ignore[arg-type]
    assert once == renderer.html_per_email(kind, renderer.context_for(view))  # type: ignore[arg-type]


def test_every_paper_appears_as_a_card_with_its_links(renderer: Renderer) -> None:
    items = sample_items(10)
    rendered = renderer.digest(digest(items))
    for item in items:
        paper = item.paper
        assert f'href="{paper.url}"' in rendered.html
        assert f'href="{paper.pdf_url}"' in rendered.html
        assert paper.url in rendered.text and paper.pdf_url in rendered.text
    assert rendered.html.count(">PDF</a>") == 10
    assert "Matched your topic: Computer vision" in rendered.html
    assert (
        "Week of Mar 9 – 15, 2026" in rendered.html and "Week of Mar 9 – 15, 2026" in rendered.text
    )
    assert "140 upvotes" in rendered.html and "140 upvotes" in rendered.text


def test_the_footer_has_preferences_unsubscribe_address_and_view_in_browser(
    renderer: Renderer,
) -> None:
    rendered = renderer.digest(digest(sample_items(2)))
    for part in (rendered.html, rendered.text):
        assert RECIPIENT.preferences_url in part
        assert RECIPIENT.unsubscribe_url in part
        assert SITE.postal_address in part
        assert "https://p.example.org/archive/2026-W11" in part
    assert "View in browser" in rendered.html


def test_a_quiet_week_gets_a_short_note(renderer: Renderer) -> None:
    rendered = renderer.digest(digest(()))
    assert "A quiet week" in rendered.html and "A quiet week" in rendered.text
    assert "a quiet week" in rendered.subject


def test_hostile_text_shows_as_text_in_html_and_text(renderer: Renderer) -> None:
    recipient = replace(RECIPIENT, email='"<script>alert(1)</script>"@example.org')
    rendered = renderer.digest(
        replace(digest(hostile_items(3)), recipient=recipient, topics=(HOSTILE,))
    )
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34;" in rendered.html
    assert "b=&#34;2&#34;" in rendered.html  # attribute values escaped too
    assert f"1. {HOSTILE} 0" in rendered.text
    assert f"Matched your topic: {HOSTILE}" in rendered.text
    assert HOSTILE in rendered.subject


def test_html_for_the_longest_realistic_digest_stays_well_under_gmails_clip(
    renderer: Renderer,
) -> None:
    html = renderer.digest(digest(longest_items(10))).html
    assert len(html.encode("utf-8")) < 80_000


def test_it_supports_dark_mode_and_loads_nothing_remote_but_thumbnails(renderer: Renderer) -> None:
    html = renderer.digest(digest(sample_items(10))).html
    assert '<meta name="color-scheme" content="light dark" />' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "<link" not in html and "@import" not in html  # no web fonts
    assert "url(" not in html  # no CSS background images either
    images = re.findall(r"<img\b[^>]*>", html)
    assert len(images) == 5  # the sample papers with thumbnails, nothing else
    assert all('alt="' in img and "thumbs.example.org" in img for img in images)


def test_every_kind_has_subject_text_and_html(renderer: Renderer) -> None:
    renderer.prepare()
    for kind in KINDS:
        if kind == "digest":
            rendered = renderer.digest(digest(sample_items(1)))
        else:
            rendered = renderer.notice(kind, notice(kind))
        assert rendered.subject and "\n" not in rendered.subject
        assert RECIPIENT.email in rendered.text + rendered.html
        assert rendered.html.startswith("<!doctype html>")


def test_templates_can_come_from_another_folder(tmp_path: Path) -> None:
    shutil.copytree(default_templates_dir(), tmp_path / "templates")
    subject = tmp_path / "templates" / "email" / "goodbye.subject.txt"
    subject.write_text("Farewell from {{ site.name }}\n", encoding="utf-8")
    rendered = Renderer(tmp_path / "templates").notice("goodbye", notice("goodbye"))
    assert rendered.subject == "Farewell from Trending Papers"


def test_a_missing_template_folder_or_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="does not exist"):
        Renderer(tmp_path / "nowhere")
    (tmp_path / "email").mkdir()
    with pytest.raises(TemplateError, match=r"digest\.mjml\.j2"):
        Renderer(tmp_path).prepare()


def mixed_items() -> tuple[DigestItem, ...]:
    """Papers with and without links, counts and authors, topics hostile and plain."""
    items = sample_items(8)
    return (
        *items[:3],
        replace(items[3], reason=HOSTILE, score=0.1),
        replace(items[4], paper=replace(items[4].paper, url=None), reason=""),
        replace(items[5], paper=replace(items[5].paper, url=None, pdf_url=None, authors=())),
        *hostile_items(2),
        *longest_items(2),
    )


@pytest.mark.parametrize(
    "items",
    [sample_items(10), (), hostile_items(3), longest_items(3), mixed_items()],
    ids=["ten-papers", "quiet-week", "hostile", "longest", "mixed"],
)
def test_cached_cards_give_the_same_email_as_rendering_every_card_afresh(
    items: tuple[DigestItem, ...],
) -> None:
    cached, fresh = Renderer(), Renderer(card_cache=0)
    view = digest(items)
    for _ in range(2):  # the second round comes from the cache
        assert cached.digest(view) == fresh.digest(view)
    assert cached.card.cache_info().hits >= len(items)
    assert fresh.card.cache_info().hits == 0


def test_a_hostile_title_stays_escaped_when_its_card_comes_from_the_cache() -> None:
    renderer = Renderer()
    first = renderer.digest(digest(hostile_items(3)))
    other_reader = replace(RECIPIENT, email="other@example.org")
    again = renderer.digest(digest(hostile_items(3), recipient=other_reader))
    assert renderer.card.cache_info().hits == 3
    for rendered in (first, again):
        assert "<script>" not in rendered.html
        escaped = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;quotes&#34; 0"
        assert f'alt="{escaped}"' in rendered.html and f"{escaped}</a>" in rendered.html
        assert f"1. {HOSTILE} 0" in rendered.text  # the text part is plain, not escaped
    assert "other@example.org" in again.html and "other@example.org" not in first.html


def test_readers_with_their_own_digest_links_share_the_cards_of_linked_papers() -> None:
    renderer = Renderer()
    items = sample_items(3)
    for reader in range(3):
        own = replace(digest(items), archive_url=f"https://p.example.org/digest/W11/{reader}")
        assert renderer.digest(own) == Renderer(card_cache=0).digest(own)
    assert renderer.card.cache_info().misses == 3


def test_readers_of_one_paper_with_different_topics_each_see_their_own_chip() -> None:
    renderer = Renderer()
    paper = sample_items(1)[0].paper
    memory = renderer.digest(digest((DigestItem(paper, "Memory"),)))
    vision = renderer.digest(digest((DigestItem(paper, "Computer vision"),)))
    assert "Matched your topic: Memory" in memory.html and "Computer vision" not in memory.html
    assert "Matched your topic: Computer vision" in vision.html and "Memory<" not in vision.html
    assert "Matched your topic: Memory" in memory.text
    assert "Matched your topic: Computer vision" in vision.text


def test_a_changed_paper_is_never_shown_from_an_old_card() -> None:
    renderer = Renderer()
    item = sample_items(1)[0]
    renderer.digest(digest((item,)))
    changed = replace(item, paper=replace(item.paper, upvotes=999, title="Retitled"))
    rendered = renderer.digest(digest((changed,)))
    assert "999 upvotes" in rendered.html and "Retitled" in rendered.html
    assert "999 upvotes" in rendered.text and "1. Retitled" in rendered.text


def test_a_paper_without_links_points_at_the_archive_of_each_edition() -> None:
    renderer = Renderer()
    item = sample_items(1)[0]
    bare = replace(item, paper=replace(item.paper, url=None, pdf_url=None))
    week11 = renderer.digest(digest((bare,)))
    week12 = renderer.digest(
        replace(digest((bare,)), archive_url="https://p.example.org/archive/W12")
    )
    assert 'class="tp-title" style' in week11.html
    assert '<a href="https://p.example.org/archive/2026-W11" class="tp-title"' in week11.html
    assert '<a href="https://p.example.org/archive/W12" class="tp-title"' in week12.html


def test_a_paper_view_holding_lists_is_rendered_without_the_cache() -> None:
    item = sample_items(1)[0]
    listed = replace(item, paper=replace(item.paper, authors=list(item.paper.authors)))
    rendered = Renderer().digest(digest((listed,)))  # type: ignore[arg-type]
    assert rendered == Renderer(card_cache=0).digest(digest((item,)))


def test_the_subject_names_the_first_paper_how_many_more_and_the_topics(
    renderer: Renderer,
) -> None:
    items = longest_items(9)
    view = replace(digest(items), topics=("LLMs", "Vision"))
    subject = renderer.digest(view).subject
    assert subject == "Your papers this week: Scaling rotation… and 8 more on LLMs, Vision"
    many = replace(view, topics=tuple(f"Topic {i}" for i in range(6)))
    subject = renderer.digest(many).subject
    assert len(subject) <= 78 and subject.endswith(" and 8 more on Topic 0 +5")
    long = replace(view, topics=("A topic whose name is far too long for any subject line",))
    subject = renderer.digest(long).subject
    assert len(subject) <= 78 and subject.endswith(" and 8 more")
    general = renderer.digest(replace(view, topics=(), items=items[:1])).subject
    assert general.startswith("Trending this week: Scaling") and "more" not in general


def test_cards_hide_zero_counts_and_say_one_comment(renderer: Renderer) -> None:
    first, second = longest_items(2)
    items = (
        replace(first, paper=replace(first.paper, upvotes=0, comments=0)),
        replace(second, paper=replace(second.paper, upvotes=1, comments=1)),
    )
    rendered = renderer.digest(digest(items))
    for part in (rendered.html, rendered.text):
        assert "0 upvotes" not in part and "0 comments" not in part
        assert "1 upvote" in part and "1 comment" in part and "1 comments" not in part


def test_a_cards_counts_line_has_no_dangling_separator(renderer: Renderer) -> None:
    (first,) = longest_items(1)
    bare = replace(first.paper, upvotes=3, comments=2, pdf_url=None, code_url=None)
    html = renderer.digest(digest((replace(first, paper=bare),))).html
    line = re.search(r"2 comments</span>(.*?)</div>", html, flags=re.S)
    assert line is not None and "&middot;" not in line.group(1) and "·" not in line.group(1)


def test_cards_say_which_topic_or_typed_interest_a_paper_matched(renderer: Renderer) -> None:
    first, second, third = longest_items(3)
    items = (
        replace(first, reason="Matched your topic: Memory"),
        replace(second, reason="Matched your interest: sparse attention"),
        replace(third, reason="Memory"),  # planned before reasons carried their kind
    )
    rendered = renderer.digest(digest(items))
    for part in (rendered.html, rendered.text):
        assert "Matched your interest: sparse attention" in part
        assert part.count("Matched your topic: Memory") == 2
        assert "Matched your topic: sparse" not in part
