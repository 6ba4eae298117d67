"""Demo data: a verifier, its trust configuration and records modelled on the article.

``enumer demo seed`` writes it into an empty store, so that a new user's first
command has something real to resolve and serve.  Every record is written
through the same operations a user would run (name_new, signing with the
verifier's wallet key, SRL revocation), so the demo also exercises them.
"""

from __future__ import annotations

from dataclasses import dataclass

from enumer.nvs import NameStore
from enumer.owner import sealed
from enumer.records import EnumName, EnumValue, Signature
from enumer.verifier import (
    append_bound,
    create_verifier,
    revoke,
    sign_bound,
    sign_name,
    update_keeping_owner,
)

DEMO_VERIFIER = "ver:demo"
DEMO_TOLLFREE = "enum:tollfree"
DEMO_DAYS = 3650

TOLLFREE_LIST = """\
# ENUMER demo toll-free list: lines below '0' are comments.
=1800555\\d{4}
E2U+sip=100|10|!^(.*)$!sip:\\1@tollfree.example.net!
=1888\\d{7}
E2U+sip=100|10|!^(.*)$!sip:\\1@tf888.example.net!
E2U+pstn:tel=100|20|!^(.*)$!tel:+\\1!
"""


@dataclass(frozen=True)
class DemoNumber:
    digits: str
    what: str
    lines: tuple[str, ...]
    index: int = 0
    signed: bool = True
    revoked: bool = False
    #: Bound signatures (SPEC 11): "" none (SIG= only), "strict" VSIG + OSIG,
    #: "stale" the directives changed after the OSIG, "transferred" the record
    #: moved to another owner after the verification (and that owner sealed it).
    bound: str = ""
    #: For "stale": the directives the OSIG was made for.
    sealed_lines: tuple[str, ...] = ()


DEMO_NUMBERS = (
    DemoNumber(
        "18009359935",
        "toll-free style: the dialled number goes to the PBX",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@pbx.example.com!",),
    ),
    DemoNumber(
        "12025550100",
        "fixed URI: every call lands on reception",
        ("E2U+sip=100|10|!^.*$!sip:reception@pbx.example.net!",),
    ),
    DemoNumber(
        "17771234567",
        "two directives with their own TTL",
        (
            "TTL=600",
            r"E2U+sip=100|10|!^(.*)$!sip:\1@a.example.com!",
            "E2U+email:mailto=200|10|!^.*$!mailto:info@example.com!",
        ),
    ),
    DemoNumber(
        "15550001234",
        "squatter's unsigned :0 (ignored)",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@squatter.example.net!",),
        signed=False,
    ),
    DemoNumber(
        "15550001234",
        "the owner's signed :1",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@owner.example.com!",),
        index=1,
    ),
    DemoNumber(
        "15551234567",
        "unsigned: not served",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@unsigned.example.com!",),
        signed=False,
    ),
    DemoNumber(
        "15550001111",
        "signed, then revoked through the SRL",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@revoked.example.com!",),
        revoked=True,
    ),
    DemoNumber(
        "15550002001",
        "strictly valid: SIG, VSIG and OSIG (served by strict gateways too)",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@strict.example.com!",),
        bound="strict",
    ),
    DemoNumber(
        "15550002002",
        "stale OSIG: the route changed after the owner sealed it (compat only)",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@changed.example.com!",),
        bound="stale",
        sealed_lines=(r"E2U+sip=100|10|!^(.*)$!sip:\1@sealed.example.com!",),
    ),
    DemoNumber(
        "15550002003",
        "VSIG for a previous owner: transferred after the verification (compat only)",
        (r"E2U+sip=100|10|!^(.*)$!sip:\1@transferred.example.com!",),
        bound="transferred",
    ),
)


def is_empty(store: NameStore) -> bool:
    return next(iter(store.iter_prefix("")), None) is None


def seed(store: NameStore) -> list[str]:
    """Write the demo data; returns one line per thing created."""
    done: list[str] = []
    address = create_verifier(
        store, DEMO_VERIFIER, "ENUMER demo verifier (not for production)", DEMO_DAYS
    )
    done.append(f"{DEMO_VERIFIER}: demo verifier owned by {address}")
    store.name_new(DEMO_TOLLFREE, TOLLFREE_LIST, DEMO_DAYS)
    done.append(f"{DEMO_TOLLFREE}: toll-free list (1800555xxxx, 1888xxxxxxx)")
    squatter = store.get_new_address()
    for number in DEMO_NUMBERS:
        name = EnumName(number.digits, number.index).to_text()
        if number.bound:
            _seed_bound(store, name, number)
            done.append(f"{name}: {number.what}")
            continue
        text = "\n".join(number.lines)
        if number.signed:
            sig = sign_name(store, DEMO_VERIFIER, name)
            text = EnumValue.from_text(text).with_signature(Signature(DEMO_VERIFIER, sig)).to_text()
        store.name_new(name, text, DEMO_DAYS, squatter if not number.signed else None)
        if number.revoked:
            revoke(store, DEMO_VERIFIER, name)
        done.append(f"{name}: {number.what}")
    return done


def _seed_bound(store: NameStore, name: str, number: DemoNumber) -> None:
    """A record with bound signatures, made as an owner and a verifier make them."""
    owner = store.get_new_address()
    first = "\n".join(number.sealed_lines or number.lines)
    store.name_new(name, _seal(store, name, first, owner), DEMO_DAYS, owner)
    append_bound(store, DEMO_VERIFIER, name, sign_bound(store, DEMO_VERIFIER, name))
    current = store.show(name).value
    if number.bound == "stale":  # a route change written without a new OSIG
        update_keeping_owner(store, name, current.replace(first, "\n".join(number.lines)), 0)
    elif number.bound == "transferred":  # to another address, which seals it again
        new_owner = store.get_new_address()
        store.name_update(name, _seal(store, name, current, new_owner), 0, new_owner)


def _seal(store: NameStore, name: str, value: str, owner: str) -> str:
    result = sealed(store, name, value, owner)
    assert isinstance(result, str), "the demo wallet holds every owner key"
    return result
