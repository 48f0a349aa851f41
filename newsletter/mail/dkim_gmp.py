"""Measured exception: dkimpy's RSA step on GMP numbers, when gmpy2 is installed.

dkimpy does the RSA private-key step in Python integers, most of a signature's cost.
`_GmpDKIM` hands dkimpy's own code the same key as gmpy2 numbers; the algorithm and
the signature bytes are dkimpy's, unchanged. Measured with DKIM on (5,000 readers,
4,331 messages, SQLite):

    .venv/bin/python benchmarks/send.py --subscribers 5000 --dkim

send-now took 63.1 s with plain `dkim.sign` and 30.6 s with this (plain: +106 %, far
over the 10 % a hand-written part may cost). gmpy2 is therefore optional: the `dkim`
extra installs it; without it, plain `dkim.sign` signs the same bytes, slower.
"""

from __future__ import annotations

from typing import Any

import dkim

try:
    import gmpy2
except ImportError:  # the `dkim` extra is not installed
    gmpy2 = None


class _GmpDKIM(dkim.DKIM):  # type: ignore[misc]  # dkimpy has no type hints
    def gen_header(
        self,
        fields: Any,
        include_headers: Any,
        canon_policy: Any,
        header_name: bytes,
        pk: Any,
        standardize: bool = False,
    ) -> Any:
        # pk: dkimpy's parsed RSA key, a dict of ints; its pow() and arithmetic take
        # gmpy2 numbers as they are.
        if isinstance(pk, dict):
            pk = {k: gmpy2.mpz(v) if isinstance(v, int) else v for k, v in pk.items()}
        return super().gen_header(
            fields, include_headers, canon_policy, header_name, pk, standardize
        )


def sign(data: bytes, selector: bytes, domain: bytes, key: bytes, **options: Any) -> bytes:
    """`dkim.sign(data, selector, domain, key, **options)`, faster with gmpy2."""
    if gmpy2 is None:
        return bytes(dkim.sign(data, selector, domain, key, **options))
    return bytes(_GmpDKIM(data).sign(selector, domain, key, **options))
