"""How input appears in one-line messages: quoted, and shortened when it is long.

Phone numbers, regexps and NAPTR fields come from strangers (typed, or published
on a public chain); an error that quotes them must stay one readable line, so
a hostile megabyte cannot flood a terminal or a log.
"""

from __future__ import annotations

__all__ = ["show"]


def show(text: str, limit: int = 80) -> str:
    """``repr`` of ``text`` for messages, cut after ``limit`` characters (and saying so)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
