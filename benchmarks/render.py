"""How fast complete digest messages are produced, and how big their HTML is.

    .venv/bin/python benchmarks/render.py [--count N] [--mixed] [--card-cache N]
        [--stencils N] [--dkim]

Renders N digests of 10 realistic papers through Composer (tokens, Jinja over the
once-compiled MJML, text part, MIME bytes) in one process and prints messages per
second of CPU time (one core), the median HTML size, and with --dkim the extra cost
of signing each message with a freshly generated 2048-bit RSA key.

By default every reader gets the same ten papers. --mixed gives each reader ten of
200 papers, each matched for one of three topics and with a score of their own, as
a real send does, so no two readers' digests are alike; --card-cache 0 renders every
paper card afresh (the cost without the card cache); --stencils 0 renders every digest
in full (the cost without stencils for readers who chose alike).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

from newsletter.config import Settings
from newsletter.delivery.compose import STENCILS, Composer
from newsletter.render import Renderer
from newsletter.render.content import DigestItem
from newsletter.render.samples import TOPICS, sample_items

SECRET = "benchmark-secret-key-0123456789"
# Copies, so cache hits compare equal papers that are not the same objects, as in
# composing processes that receive their jobs pickled.
SAME = tuple(replace(item, paper=replace(item.paper)) for item in sample_items(10))


Reader = Callable[[int], Sequence[DigestItem]]  # the papers reader n gets


def _composer(
    settings: Settings, card_cache: int | None = None, stencils: int = STENCILS
) -> Composer:
    renderer = None if card_cache is None else Renderer(card_cache=card_cache)
    return Composer(settings, SECRET, renderer=renderer, stencils=stencils)


def same_papers(_: int) -> Sequence[DigestItem]:
    return SAME


def mixed_papers(seed: int) -> Reader:
    pool = [item.paper for item in sample_items(200)]
    rng = random.Random(seed)

    def papers(n: int) -> Sequence[DigestItem]:
        chosen = rng.sample(pool, 10)
        return [DigestItem(p, TOPICS[(n + p.id) % 3], rng.random()) for p in chosen]

    return papers


def run(composer: Composer, count: int, papers: Reader = same_papers) -> tuple[float, list[int]]:
    readers = [papers(n) for n in range(count)]
    sizes: list[int] = []
    # CPU time of this process: the work one core does, whatever else runs on the box.
    start = time.process_time()
    for n, items in enumerate(readers):
        message = composer.digest(
            subscriber_id=n + 1,
            email=f"reader{n}@example.org",
            edition_key="2026-W11",
            week_start=date(2026, 3, 9),
            week_end=date(2026, 3, 15),
            items=items,
            topics=TOPICS[: 1 + n % 3],
        )
        sizes.append(len(message.data))
    return time.process_time() - start, sizes


def html_size(composer: Composer) -> int:
    view = composer.digest_view(
        subscriber_id=1,
        email="reader@example.org",
        edition_key="2026-W11",
        week_start=date(2026, 3, 9),
        week_end=date(2026, 3, 15),
        items=sample_items(10),
        topics=TOPICS,
    )
    return len(composer.renderer.digest(view).html.encode("utf-8"))


def dkim_settings(folder: Path) -> Settings:
    key = folder / "dkim.pem"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(key),
        ],
        check=True,
        capture_output=True,
    )
    return Settings().with_overrides(
        dkim={"domain": "example.org", "selector": "news", "private_key_path": str(key)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--dkim", action="store_true", help="also measure DKIM signing")
    parser.add_argument("--mixed", action="store_true", help="10 of 200 papers per reader")
    parser.add_argument("--card-cache", type=int, help="paper cards kept (0: none)")
    parser.add_argument("--stencils", type=int, default=STENCILS, help="0: every digest in full")
    args = parser.parse_args()

    composer = _composer(Settings(), args.card_cache, args.stencils)
    papers = mixed_papers(1) if args.mixed else same_papers
    run(composer, 200, papers)  # warm caches the way a long send run would
    elapsed, sizes = run(composer, args.count, papers)
    print(f"messages:            {args.count}{' (mixed papers)' if args.mixed else ''}")
    rate, each = args.count / elapsed, elapsed / args.count * 1e6
    print(f"emails/second:       {rate:,.0f} per core ({each:.0f} µs CPU each)")
    cards = composer.renderer.card.cache_info()
    print(f"paper cards:         {cards.misses} rendered, {cards.hits} reused")
    print(f"median message size: {statistics.median(sizes) / 1024:.1f} KiB")
    print(f"median HTML size:    {html_size(composer) / 1024:.1f} KiB (Gmail clips above 102 KB)")
    if args.dkim:
        with tempfile.TemporaryDirectory() as folder:
            signed = _composer(dkim_settings(Path(folder)))
            count = max(50, args.count // 10)
            run(signed, 20)
            signed_elapsed, _ = run(signed, count)
        per_plain = elapsed / args.count
        per_signed = signed_elapsed / count
        print(f"with DKIM (RSA 2048): {count / signed_elapsed:,.0f} emails/second")
        print(f"DKIM cost/message:   {(per_signed - per_plain) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
