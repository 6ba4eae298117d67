"""What the pages show beyond the service's data: the organisation, pages of long lists,
readable audit details, and where to go back to.

Pure presentation helpers, free of FastAPI, so that ``serve`` can build an
:class:`Organisation` before any web code is imported and the rules are tested
on their own.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from enumer.verification.model import VerificationError

#: The image types a logo may have, by file suffix (served with this content type).
LOGO_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
#: A logo is shown in every page's header: a small image, not a photograph.
MAX_LOGO_BYTES = 512 * 1024
#: The URL the logo is served at (same origin: the pages' CSP allows nothing else).
LOGO_PATH = "/org/logo"
#: Rows on one page of the console's queue and of its audit log.
QUEUE_PAGE = 50
AUDIT_PAGE = 100


@dataclass(frozen=True)
class Organisation:
    """Who runs the service, as the pages present it (instead of the bare ``ver:ID``)."""

    name: str = ""
    contact: str = ""  # an e-mail address, a URL or a line of text
    logo: bytes = b""
    logo_type: str = ""

    def display_name(self, verifier: str) -> str:
        return self.name or verifier

    @property
    def contact_href(self) -> str:
        """A link for the contact ("" when it is plain text)."""
        text = self.contact.strip()
        if text.startswith(("https://", "http://", "mailto:", "tel:")):
            return text
        if "@" in text and " " not in text:
            return f"mailto:{text}"
        if text.startswith("+") and text[1:].replace(" ", "").isdigit():
            return "tel:" + text.replace(" ", "")
        return ""


def load_organisation(
    config: Path | None, name: str | None, logo: Path | None, contact: str | None
) -> Organisation:
    """The organisation from ``--org-config`` (TOML: ``name``, ``logo``, ``contact``,
    optionally under ``[organisation]``), each overridden by its own option.

    A relative ``logo`` in the file is relative to the file. Refused with a
    VerificationError: an unreadable file, an unknown key, a logo of an
    unknown type or over :data:`MAX_LOGO_BYTES`.
    """
    values: dict[str, Any] = {}
    base = Path.cwd()
    if config is not None:
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise VerificationError(f"cannot read the organisation file {config}: {exc}") from None
        section = data.get("organisation", data)
        if not isinstance(section, dict):
            raise VerificationError(f"{config}: [organisation] must be a table")
        unknown = sorted(set(section) - {"name", "logo", "contact"})
        if unknown:
            raise VerificationError(f"{config}: unknown key {unknown[0]!r} (name, logo, contact)")
        for key, value in section.items():
            if not isinstance(value, str):
                raise VerificationError(f"{config}: {key} must be a string")
        values = dict(section)
        base = config.parent
    if name is not None:
        values["name"] = name
    if contact is not None:
        values["contact"] = contact
    logo_path = logo if logo is not None else (Path(values["logo"]) if values.get("logo") else None)
    if logo_path is not None and logo is None and not logo_path.is_absolute():
        logo_path = base / logo_path
    image, kind = _read_logo(logo_path) if logo_path is not None else (b"", "")
    org_name = " ".join(str(values.get("name", "")).split())
    if len(org_name) > 100:
        raise VerificationError("the organisation name is over 100 characters")
    org_contact = " ".join(str(values.get("contact", "")).split())
    if len(org_contact) > 200:
        raise VerificationError("the organisation contact is over 200 characters")
    return Organisation(org_name, org_contact, image, kind)


def _read_logo(path: Path) -> tuple[bytes, str]:
    kind = LOGO_TYPES.get(path.suffix.lower())
    if kind is None:
        raise VerificationError(
            f"the logo {path} is not one of {', '.join(sorted(LOGO_TYPES))} (by its suffix)"
        )
    try:
        with path.open("rb") as handle:
            image = handle.read(MAX_LOGO_BYTES + 1)
    except OSError as exc:
        raise VerificationError(f"cannot read the logo {path}: {exc.strerror or exc}") from None
    if len(image) > MAX_LOGO_BYTES:
        raise VerificationError(f"the logo {path} is over {MAX_LOGO_BYTES // 1024} KiB")
    if not image:
        raise VerificationError(f"the logo {path} is empty")
    return image, kind


# -- paging ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager:
    """One page of a list of ``total`` rows, ``size`` a page, and the links around it.

    ``page`` counts from 1; a page past the end shows nothing and links back.
    ``params`` are the list's filters, kept in every link.
    """

    path: str
    page: int
    size: int
    total: int
    params: tuple[tuple[str, str], ...] = ()

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    @property
    def first_row(self) -> int:
        return min(self.total, self.offset + 1)

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)

    def url(self, page: int) -> str:
        query = [(k, v) for k, v in self.params if v]
        if page > 1:
            query.append(("page", str(page)))
        return self.path + ("?" + urlencode(query) if query else "")

    @property
    def previous(self) -> str:
        return self.url(min(self.page, self.pages + 1) - 1) if self.page > 1 else ""

    @property
    def next(self) -> str:
        return self.url(self.page + 1) if self.page < self.pages else ""


# -- audit details -------------------------------------------------------------------------------

#: Detail keys whose numbers are unix times (the others are counts, heights, ...).
TIME_KEYS = frozenset({"code_expires", "expires", "at", "since", "until"})


def utc(when: float | None) -> str:
    """A unix time as the pages show it."""
    if when is None:
        return "—"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def detail_text(key: str, value: Any) -> str:
    """An audit detail's value for a person: dates, yes/no, JSON; never a Python repr."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, int | float) and key in TIME_KEYS:
        return utc(float(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


# -- where to go ---------------------------------------------------------------------------------


def safe_next(target: str) -> str:
    """Where to return after sign-in: a console path of this site, else the queue.

    Only ``/console...`` paths are followed, never a scheme, a host (``//``) or
    a backslash, so the sign-in page cannot be made into an open redirect.
    """
    if (
        target.startswith("/console")
        and not target.startswith("/console/login")
        and "\\" not in target
        and "//" not in target
        and all(0x20 < ord(c) < 0x7F for c in target)
        and len(target) <= 500
    ):
        return target
    return "/console"
