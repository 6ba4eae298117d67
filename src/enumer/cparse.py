"""Text read the way emcdns (C, glibc, the "C" locale) reads it, and RE2's error text.

A record that emcdns serves and ENUMER does not (or the reverse) splits the
network, so every place that reads chain text as emcdns does must agree on what
C calls a blank, what ``atoi`` and ``sscanf("%u")`` return for odd input, and
which bytes emcdns trims.  They are written once, here, and used by the record
reader (:mod:`enumer.records`) and the trust layer (:mod:`enumer.trust`).

The RE2 binding reports errors as bytes; :func:`re2_message` makes one line of
text of them for every module that compiles chain or user regexps.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["C_BLANKS", "C_TRIM", "atoi", "re2_message", "scanf_unsigned"]

C_BLANKS: Final = " \t\n\v\f\r"
"""C ``isspace`` in the "C" locale; Python's ``\\s`` and ``str.isspace`` also match
U+001C..U+001F, U+0085, U+00A0 and more, which emcdns does not skip or cut at."""

C_TRIM: Final = "".join(map(chr, range(0x21)))
"""The bytes emcdns trims (``*p <= 040``) around services, verifiers, signatures,
toll-free lines."""

_ATOI: Final = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def atoi(text: str) -> int:
    """glibc ``atoi``: leading blanks, optional sign, digits; 0 when there are none.

    emcdns reads ``TTL=`` and the SRL bit count with atoi, so ``TTL = 120abc``
    means 120 and ``TTL=x`` 0.  atoi is ``(int) strtol``: saturated at 64 bits,
    then cut to a 32-bit int.
    """
    m = _ATOI.match(text)
    if m is None:
        return 0
    value = max(-(2**63), min(2**63 - 1, int(m.group(1)))) & 0xFFFFFFFF
    return value - 2**32 if value >= 2**31 else value


def scanf_unsigned(text: str) -> int:
    """The value ``sscanf("%u")`` stores for an optionally signed decimal: strtoul
    (a magnitude beyond 64 bits saturates, a minus sign negates modulo 2**64) cut to
    an ``unsigned int``."""
    magnitude = int(text.lstrip("+-"))
    if magnitude > 2**64 - 1:
        return 0xFFFFFFFF
    return (-magnitude if text.startswith("-") else magnitude) % 2**64 & 0xFFFFFFFF


def re2_message(exc: Exception) -> str:
    """RE2's error text (the binding passes it as bytes), as one line of text."""
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)
