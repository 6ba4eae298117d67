"""Writes ``bound.json``: SPEC section 11 test vectors (VSIG / OSIG strict validity).

Run ``python tests/vectors/make_bound.py`` to regenerate.  The keys are those of
``shared/vectors/keys.json`` (K2 a verifier, K3 a number owner, K4 a second
verifier, K5 a stranger); signatures are RFC 6979 deterministic, so the file is
stable.  Each vector says what a gateway must decide: ``strict``, the status of
every bound line, and a phrase the explanation must contain.  The signatures
are made here with the signer, but the expectations are written by hand, from
the SPEC's rule, and ``tests/test_bound.py`` checks them with the verifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from enumer import crypto

NET = crypto.MAINNET
KEYS = {
    "K2": "1b0b67d7",
    "K3": "7994a60c",
    "K4": "ffffffff",
    "K5": "d97f5108",
}
SHARED_KEYS = json.loads((Path(__file__).parents[3] / "shared/vectors/keys.json").read_text())


def key(label: str) -> crypto.PrivateKey:
    for entry in SHARED_KEYS:
        if entry["private_key_hex"].startswith(KEYS[label]):
            return crypto.PrivateKey.from_hex(entry["private_key_hex"])
    raise KeyError(label)


def p2pkh(label: str) -> str:
    return key(label).address(NET).to_text()


def p2wpkh(label: str) -> str:
    return key(label).address(NET, crypto.AddressKind.P2WPKH).to_text()


NAME = "enum:18009359935:0"
E2U = r"E2U+sip=100|10|!^(.*)$!sip:\1@pbx.example.com!"
E2U_RELAY = r"E2U+sip=100|10|!^(.*)$!sip:\1@relay.attacker.example!"
#: 2026-12-01T10:00:00Z: the chain time of most vectors.
CHAIN_TIME = int(dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC).timestamp())
OSIG_TIME = CHAIN_TIME - 3600
NOT_AFTER = "2027-06-01"


def digest(value: str) -> str:
    """The SPEC 11 digest, written out independently of enumer.bound."""
    lines = []
    for raw in value.replace("\r", "\n").split("\n"):
        line = raw.strip(" \t")
        if not line:
            continue
        if "=" in line and line.split("=", 1)[0].strip(" \t").lower() in ("sig", "vsig", "osig"):
            continue
        lines.append(line)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def vsig(
    signer: str, verifier: str, owner: str, not_after: str = NOT_AFTER, name: str = NAME
) -> str:
    message = f"enumer-vsig:1 {name} {owner} {not_after}"
    return f"VSIG={verifier}|{not_after}|{key(signer).sign_message(message)}"


def osig(signer: str, directives: str, time: int = OSIG_TIME, name: str = NAME) -> str:
    message = f"enumer-osig:1 {name} {time} {digest(directives)}"
    return f"OSIG={time}|{key(signer).sign_message(message)}"


def sig(signer: str, verifier: str, name: str = NAME) -> str:
    return f"SIG={verifier}|{key(signer).sign_message(name)}"


VERIFIERS = {
    "ver:acme": {"owner": p2pkh("K2"), "value": "ACME verifier"},
    "ver:two": {"owner": p2wpkh("K4"), "value": "second verifier (P2WPKH)"},
    "ver:srl": {"owner": p2pkh("K2"), "value": "revoking verifier\nSRL=5|srl:acme-%02x"},
    "ver:other": {"owner": p2pkh("K5"), "value": "a verifier the gateway does not trust"},
}
TRUST = "ver:acme|ver:two|ver:srl|ver:gone"


def srl_bucket_name(name: str) -> str:
    h = 0x5555
    for byte in name.encode():
        h = (h + (h << 5) + byte) & 0xFFFFFFFF
    return f"srl:acme-{h & 31:02x}"


def vector(
    ident: str,
    description: str,
    owner: str,
    lines: list[str],
    strict: bool,
    statuses: list[tuple[str, int, str]],
    reason: str,
    *,
    chain_time: int = CHAIN_TIME,
    joiner: str = "\n",
    srl: dict[str, str] | None = None,
    accepted_time: int | None = None,
    previous_owners: list[str] | None = None,
) -> dict[str, Any]:
    value = joiner.join(lines)
    return {
        "id": ident,
        "description": description,
        "name": NAME,
        "owner": owner,
        "value": value,
        "lines": value.splitlines(),
        "chain_time": chain_time,
        "srl_records": srl or {},
        "accepted_time": accepted_time,
        "previous_owners": previous_owners or [],
        "digest": digest(value),
        "expected": {
            "strict": strict,
            "lines": [{"kind": k, "line": n, "status": s} for k, n, s in statuses],
            "reason_contains": reason,
        },
    }


def vectors() -> list[dict[str, Any]]:
    owner, owner_w, stranger = p2pkh("K3"), p2wpkh("K3"), p2pkh("K5")
    base = [E2U, "TTL=600"]
    end_of_day = int(dt.datetime(2027, 6, 1, 23, 59, 59, tzinfo=dt.UTC).timestamp())
    p2sh = crypto.base58check_encode(NET.p2sh_version, bytes(20))
    out = [
        vector(
            "strict-p2pkh",
            "P2PKH owner, P2PKH verifier: SIG, VSIG and OSIG all valid",
            owner,
            [
                *base,
                sig("K2", "ver:acme"),
                vsig("K2", "ver:acme", owner),
                osig("K3", "\n".join(base)),
            ],
            True,
            [("VSIG", 4, "valid"), ("OSIG", 5, "valid")],
            "VSIG of ver:acme, valid until 2027-06-01, OSIG of 2026-12-01T09:00Z",
        ),
        vector(
            "strict-p2wpkh",
            "P2WPKH owner (em1...), P2WPKH verifier ver:two",
            owner_w,
            [*base, vsig("K4", "ver:two", owner_w), osig("K3", "\n".join(base))],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid")],
            "VSIG of ver:two",
        ),
        vector(
            "sig-only",
            "a reference record: SIG= only, no bound line",
            owner,
            [*base, sig("K2", "ver:acme")],
            False,
            [],
            "SIG= only",
        ),
        vector(
            "copied-to-new-owner",
            "SIG and VSIG copied onto the name re-registered by a stranger, who adds "
            "an OSIG of its own: the VSIG names the previous owner",
            stranger,
            [
                *base,
                sig("K2", "ver:acme"),
                vsig("K2", "ver:acme", owner),
                osig("K5", "\n".join(base)),
            ],
            False,
            [("VSIG", 4, "owner changed"), ("OSIG", 5, "valid")],
            f"VSIG names owner {owner} but the record is owned by {stranger}",
            previous_owners=[stranger, owner],
        ),
        vector(
            "copied-without-history",
            "the same copy judged without the name's history (a gateway): a bad signature",
            stranger,
            [*base, vsig("K2", "ver:acme", owner), osig("K5", "\n".join(base))],
            False,
            [("VSIG", 3, "bad signature"), ("OSIG", 4, "valid")],
            "does not verify against",
        ),
        vector(
            "relay-rewrote-e2u",
            "a relay rewrote the E2U line and kept every signature line",
            owner,
            [E2U_RELAY, "TTL=600", vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "valid"), ("OSIG", 4, "stale")],
            "OSIG digest does not match the directives",
        ),
        vector(
            "ttl-changed",
            "the TTL line is a directive too: changing it makes the OSIG stale",
            owner,
            [E2U, "TTL=60", vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "valid"), ("OSIG", 4, "stale")],
            "OSIG digest does not match the directives",
        ),
        vector(
            "unknown-line-added",
            "an unknown line is a directive too",
            owner,
            [*base, "X-NOTE=hello", vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 4, "valid"), ("OSIG", 5, "stale")],
            "OSIG digest does not match the directives",
        ),
        vector(
            "expired",
            "VSIG not-after the day before the chain's day",
            owner,
            [*base, vsig("K2", "ver:acme", owner, "2026-11-30"), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "expired"), ("OSIG", 4, "valid")],
            "VSIG of ver:acme expired on 2026-11-30",
        ),
        vector(
            "not-after-last-second",
            "chain time 23:59:59 UTC of the not-after day: still valid",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid")],
            "valid until 2027-06-01",
            chain_time=end_of_day,
        ),
        vector(
            "not-after-next-day",
            "chain time 00:00:00 UTC of the day after: expired",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "expired"), ("OSIG", 4, "valid")],
            "expired on 2027-06-01",
            chain_time=end_of_day + 1,
        ),
        vector(
            "srl-revoked",
            "the verifier's SRL lists the name: the VSIG is revoked like a SIG",
            owner,
            [
                *base,
                sig("K2", "ver:srl"),
                vsig("K2", "ver:srl", owner),
                osig("K3", "\n".join(base)),
            ],
            False,
            [("VSIG", 4, "revoked"), ("OSIG", 5, "valid")],
            f"revoked by {srl_bucket_name(NAME)}",
            srl={srl_bucket_name(NAME): f"revoked\n{NAME}\n"},
        ),
        vector(
            "srl-other-name",
            "the SRL bucket exists but lists another name: not revoked",
            owner,
            [*base, vsig("K2", "ver:srl", owner), osig("K3", "\n".join(base))],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid")],
            "VSIG of ver:srl",
            srl={srl_bucket_name(NAME): "revoked\nenum:18009359936:0\n"},
        ),
        vector(
            "untrusted-verifier",
            "a VSIG of a verifier not on the trust list",
            owner,
            [*base, vsig("K5", "ver:other", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "untrusted verifier"), ("OSIG", 4, "valid")],
            "ver:other is not on the trust list",
        ),
        vector(
            "verifier-missing",
            "a trusted verifier whose ver: record does not exist",
            owner,
            [*base, vsig("K2", "ver:gone", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "verifier unusable"), ("OSIG", 4, "valid")],
            "ver:gone does not exist",
        ),
        vector(
            "wrong-verifier-key",
            "a VSIG of ver:acme made with another key",
            owner,
            [*base, vsig("K5", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "bad signature"), ("OSIG", 4, "valid")],
            "does not verify against",
            previous_owners=[owner],
        ),
        vector(
            "osig-wrong-key",
            "an OSIG made by a key that is not the owner's",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K5", "\n".join(base))],
            False,
            [("VSIG", 3, "valid"), ("OSIG", 4, "stale")],
            "OSIG digest does not match the directives",
        ),
        vector(
            "no-osig",
            "a VSIG without an OSIG",
            owner,
            [*base, vsig("K2", "ver:acme", owner)],
            False,
            [("VSIG", 3, "valid")],
            "no OSIG line",
        ),
        vector(
            "no-vsig",
            "an OSIG without a VSIG",
            owner,
            [*base, sig("K2", "ver:acme"), osig("K3", "\n".join(base))],
            False,
            [("OSIG", 4, "valid")],
            "no VSIG line",
        ),
        vector(
            "malformed-vsig",
            "a VSIG with two fields, a VSIG with a bad date, an OSIG with a leading zero",
            owner,
            [
                *base,
                "VSIG=ver:acme|AAAA",
                "VSIG=ver:acme|2027-02-30|AAAA",
                "OSIG=0123|AAAA",
                vsig("K2", "ver:acme", owner),
                osig("K3", "\n".join(base)),
            ],
            True,
            [
                ("VSIG", 3, "malformed"),
                ("VSIG", 4, "malformed"),
                ("OSIG", 5, "malformed"),
                ("VSIG", 6, "valid"),
                ("OSIG", 7, "valid"),
            ],
            "VSIG of ver:acme",
        ),
        vector(
            "malformed-signature",
            "base64 of the wrong length in the only VSIG",
            owner,
            [*base, "VSIG=ver:acme|2027-06-01|QUJD", osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "malformed"), ("OSIG", 4, "valid")],
            "VSIG of ver:acme",
        ),
        vector(
            "several-vsig",
            "three VSIG lines: untrusted, expired and valid; a SIG of another verifier",
            owner,
            [
                *base,
                vsig("K5", "ver:other", owner),
                vsig("K2", "ver:acme", owner, "2026-01-01"),
                vsig("K4", "ver:two", owner, "2027-03-01"),
                sig("K2", "ver:acme"),
                osig("K3", "\n".join(base)),
            ],
            True,
            [
                ("VSIG", 3, "untrusted verifier"),
                ("VSIG", 4, "expired"),
                ("VSIG", 5, "valid"),
                ("OSIG", 7, "valid"),
            ],
            "VSIG of ver:two, valid until 2027-03-01",
        ),
        vector(
            "several-osig-newest-valid",
            "an older OSIG over the old directives and a newer one over the current: "
            "the newest valid counts, the older is not checked",
            owner,
            [
                *base,
                vsig("K2", "ver:acme", owner),
                osig("K3", "E2U+sip=100|10|!^.*$!sip:old@pbx.example.com!", OSIG_TIME - 86400),
                osig("K3", "\n".join(base)),
            ],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "superseded"), ("OSIG", 5, "valid")],
            "OSIG of 2026-12-01T09:00Z",
        ),
        vector(
            "several-osig-newest-stale",
            "a newer OSIG that does not verify and an older valid one: the older counts",
            owner,
            [
                *base,
                vsig("K2", "ver:acme", owner),
                osig("K3", "\n".join(base), OSIG_TIME - 86400),
                osig("K3", "E2U+sip=100|10|!^.*$!sip:other@pbx.example.com!"),
            ],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid"), ("OSIG", 5, "stale")],
            "OSIG of 2026-11-30T09:00Z",
        ),
        vector(
            "freshness-older-than-accepted",
            "an OSIG older than one this consumer already accepted for the name",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "valid"), ("OSIG", 4, "older than accepted")],
            "older than the OSIG of 2026-12-01T09:30Z",
            accepted_time=OSIG_TIME + 1800,
        ),
        vector(
            "freshness-same-time",
            "an OSIG of the time already accepted: accepted again",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid")],
            "OSIG of 2026-12-01T09:00Z",
            accepted_time=OSIG_TIME,
        ),
        vector(
            "crlf-blank-lines",
            "CR LF line ends, blank lines, blanks around lines and lower-case keys: the "
            "digest is the LF one, so the OSIG made over the clean value verifies",
            owner,
            [
                f"  {E2U}\t",
                "",
                " TTL=600 ",
                "",
                "  vsig = " + vsig("K2", "ver:acme", owner)[5:],
                "osig=" + osig("K3", "\n".join(base))[5:],
                "",
            ],
            True,
            [("VSIG", 5, "valid"), ("OSIG", 6, "valid")],
            "VSIG of ver:acme",
            joiner="\r\n",
        ),
        vector(
            "cr-only",
            "old Mac line ends (CR alone)",
            owner,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            True,
            [("VSIG", 3, "valid"), ("OSIG", 4, "valid")],
            "VSIG of ver:acme",
            joiner="\r",
        ),
        vector(
            "owner-cannot-sign",
            "an owner address of another kind (P2SH) cannot make an OSIG",
            p2sh,
            [*base, osig("K3", "\n".join(base))],
            False,
            [("OSIG", 3, "owner cannot sign")],
            "cannot make an OSIG",
        ),
        vector(
            "vsig-for-p2pkh-form-owner-is-p2wpkh",
            "the VSIG names the P2PKH form of the owner's key, the record is owned by its "
            "P2WPKH form: the address as the node prints it is what is signed",
            owner_w,
            [*base, vsig("K2", "ver:acme", owner), osig("K3", "\n".join(base))],
            False,
            [("VSIG", 3, "owner changed"), ("OSIG", 4, "valid")],
            f"VSIG names owner {owner} but the record is owned by {owner_w}",
            previous_owners=[owner],
        ),
    ]
    return out


DIGESTS = [
    ("", ""),
    (E2U, E2U),
    (f"{E2U}\nSIG=ver:acme|AAAA\nVSIG=x\nOSIG=y", E2U),
    (f"\r\n {E2U} \r\n\r\nTTL=600\r\n", f"{E2U}\nTTL=600"),
    (f"{E2U}\rTTL=600\r", f"{E2U}\nTTL=600"),
    (f"{E2U}\n Sig = x\n vSiG=y\nOsig\t=z\nSIGNAL=kept\nSIG", f"{E2U}\nSIGNAL=kept\nSIG"),
    (f"TTL=600\n{E2U}", f"TTL=600\n{E2U}"),
    (
        "E2U+sip=100|10|!^.*$!sip:caf\u00e9@example.com!",
        "E2U+sip=100|10|!^.*$!sip:caf\u00e9@example.com!",
    ),
]


def main() -> None:
    data = {
        "description": "SPEC section 11 bound signatures: strict validity of records",
        "source": "tests/vectors/make_bound.py (keys of shared/vectors/keys.json)",
        "rules": [
            "blanks trimmed around lines and around the key before '=' are space and tab",
            "a line without '=' is never a signature line (it is a directive for the digest)",
            "not-after is valid through 23:59:59 UTC of its day, read at the chain time",
            "line numbers count the value's lines, each of CR, LF and CR LF ending one",
        ],
        "verifiers": VERIFIERS,
        "trust": TRUST,
        "vectors": vectors(),
        "digests": [
            {"value": v, "directives": d, "digest": hashlib.sha256(d.encode()).hexdigest()}
            for v, d in DIGESTS
        ],
    }
    path = Path(__file__).with_name("bound.json")
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
