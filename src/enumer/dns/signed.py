"""The signed side of an answer table: RRSIGs and the NSEC chain, built with the table.

A :class:`SignedZone` belongs to one :class:`enumer.dns.table.AnswerTable`
and one zone origin (the zone of the keys: ``enum.`` or ``enum.enumer.org.``).
When the table is built it signs every answer and makes the NSEC chain over
the served names, in spawned worker processes (one per core; each gets its
run of the chain by pipe); when the table changes it re-signs the numbers
touched and the NSEC of their predecessors; when the signatures are half way
to their expiry, or a key's timing passes, it signs everything again.
Queries with the DO bit then only pick bytes:

* :attr:`SignedZone.entries`: key (digits in label order, like the table;
  ``b""`` for the apex) -> the signed answer's length (2 bytes), the signed
  answer (NAPTR RRs and their RRSIGs, all owned by the pointer to the
  question) and the name's NSEC and its RRSIGs (owners written out in full):
  a second map with the table's keys, a flat table file
  (:mod:`enumer.dns.flat`) that the signing workers' parts are written to as
  they come, unlinked and mapped, so that it costs the heap nothing;
* :attr:`SignedZone.chain`: the served names in canonical order, packed
  (:class:`enumer.dns.nsec.Chain`), for finding the NSEC that covers a name
  that does not exist (a bisection).

The C worker loop answers DO=1 hits from :attr:`SignedZone.entries` itself
(``udp._c_zones`` hands it the file's mapping); denials and everything else
signed take the Python path (:func:`enumer.dns.wire.respond`), which reads
the same maps.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from enumer.dns import memory
from enumer.dns.dnssec import (
    DEFAULT_REFRESH,
    DEFAULT_VALIDITY,
    DNSKEY_TTL,
    T_DNSKEY,
    T_NS,
    T_NSEC,
    T_RRSIG,
    T_SOA,
    DnssecError,
    Key,
    KeySet,
    NumberSigner,
    Window,
    digits_owner,
    iter_ranges,
    key_from_state,
    key_state,
    nsec_rrs,
    origin_wire,
    rr,
    sign_rrset,
    type_bitmap,
)
from enumer.dns.flat import Damaged, Entries, FlatTable, TableWriter, copy_changed
from enumer.dns.nsec import Chain

APEX_TYPES = type_bitmap((T_SOA, T_RRSIG, T_NSEC, T_DNSKEY))

#: Runs of the chain per signing worker: small runs keep each worker's share (its
#: names, answers and signed entries, twice over while pickled) a few MiB.
JOBS_PER_WORKER = 64

#: The keys of a spawned signing worker (set by its initializer).
_WORKER_KEYS: list[Key] = []


def _worker_start(states: list[tuple[str, int, int, bytes]]) -> None:
    """In a spawned signing worker: default signals, the signing keys."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    _WORKER_KEYS[:] = [key_from_state(s) for s in states]


@dataclass(frozen=True)
class _Job:
    """A run of the chain for a signing worker: its names, their answers, the next name."""

    origin: bytes
    names: list[str]
    rrs: list[bytes]
    following: str
    window: Window
    nsec_ttl: int


def _worker_sign(job: _Job) -> Entries:
    return sign_names(_WORKER_KEYS, job)


def sign_names(keys: list[Key], job: _Job) -> Entries:
    """The :attr:`SignedZone.entries` of a run of the chain, encoded as the table file
    holds them (so that the parent only writes them out)."""
    entries = Entries()
    for key, value in signed_items(keys, job):
        entries.add(key, value)
    return entries


def signed_items(keys: list[Key], job: _Job) -> Iterator[tuple[bytes, bytes]]:
    """(key, entry) of each name of a run of the chain: its signed answer and NSEC."""
    names = job.names
    signer = NumberSigner(keys, job.origin, job.window, job.nsec_ttl)
    next_owner = b""
    for i, digits in enumerate(names):
        following = names[i + 1] if i + 1 < len(names) else job.following
        if not digits:  # the apex: its NSEC only
            nsec = nsec_rrs(keys, job.origin, "", following, APEX_TYPES, job.window, job.nsec_ttl)
            yield b"", b"\x00\x00" + nsec
            continue
        owner = next_owner or digits_owner(digits, job.origin)
        next_owner = digits_owner(following, job.origin)
        made = signer.sign(digits, owner, job.rrs[i], next_owner)
        yield digits[::-1].encode(), entry(made.answer, made.nsec)


def _job(
    origin: bytes,
    chain: Chain,
    answers: Mapping[bytes, bytes],
    window: Window,
    nsec_ttl: int,
    span: tuple[int, int],
) -> _Job:
    """The job of the chain positions ``[lo, hi)`` (``span``)."""
    lo, hi = span
    names = chain[lo:hi]
    rrs = [answers[d[::-1].encode()] if d else b"" for d in names]
    return _Job(origin, names, rrs, chain.next_of(hi - 1), window, nsec_ttl)


@dataclass
class SignedZone:
    """Signed answers and the NSEC chain of one zone, kept in step with a table."""

    keyset: KeySet
    validity: int = DEFAULT_VALIDITY
    refresh_after: int = DEFAULT_REFRESH
    negative_ttl: int = 300
    #: Key (as the table's; ``b""``: the apex) -> the length of the signed answer (2
    #: bytes), the signed answer (NAPTRs and RRSIGs, owned by the pointer c00c), and the
    #: name's NSEC and RRSIGs (owners in full): one map with the table's keys.  Once
    #: signed, a flat table in an unlinked file beside the answer table's (the C
    #: loop reads it in place, forked workers share its pages, and it costs the heap
    #: nothing); changed in place by :meth:`update`.
    entries: Mapping[bytes, bytes] = field(default_factory=dict)
    #: Keys whose entry changed since the last :meth:`snapshot` (None: all of them).
    changed_keys: set[bytes] | None = None
    chain: Chain = field(default_factory=Chain)
    window: Window = field(default_factory=lambda: Window(0, 0))
    signed_at: float = 0.0
    seconds: float = 0.0  # how long the last full signing took
    #: The apex: the DNSKEY RRset and its RRSIGs (owned by the pointer to the question).
    dnskey: bytes = b""
    dnskey_count: int = 0
    #: RRs in each entry's NSEC part (the NSEC and one RRSIG per signing key).
    nsec_count: int = 2
    #: (keys signing the DNSKEY set, keys signing the rest) of the current signatures.
    keys: tuple[list[Key], list[Key]] = ([], [])
    signed_state: tuple[tuple[int, ...], ...] = ()
    #: Why the signatures kept beside the table file were not served at the start
    #: ("": they were, or none were looked for).
    not_reused: str = ""
    _soa: tuple[int, tuple[bytes, bytes, int]] = (-1, (b"", b"", 0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def origin(self) -> bytes:
        """The zone in lower-case wire form with the root label (``b"\\x04enum\\x00"``)."""
        return origin_wire(self.keyset.zone)

    @property
    def nsec_ttl(self) -> int:
        return self.negative_ttl  # RFC 4034 4: the SOA minimum

    # -- signing ------------------------------------------------------------------

    def sign_all(self, answers: Mapping[bytes, bytes], workers: int | None = None) -> None:
        """Sign every answer and the whole chain (a build, or signatures due for renewal).

        The entries go to a new table file part by part as the workers send them,
        so the parent holds only each key's hash and offset meanwhile.
        """
        started = time.monotonic()
        now = time.time()
        ksks, zsks = self.keyset.signers(now)
        window = Window.starting(now, self.validity)
        chain = Chain.of_keys(answers)
        memory.trim()  # the names, sorted and packed
        workers = workers or os.cpu_count() or 1
        mapped = answers if isinstance(answers, FlatTable) else None
        directory = mapped.path.parent if mapped is not None and mapped.path else None
        writer = TableWriter(None, len(chain), directory)
        origin, ttl = self.origin, self.nsec_ttl

        def jobs() -> Iterator[_Job]:
            for span in iter_ranges(len(chain), workers * JOBS_PER_WORKER):
                yield _job(origin, chain, answers, window, ttl, span)
                if mapped is not None:
                    # Each job reads its answers through the mapping: left resident,
                    # the whole file would count in this process's RSS by the end.
                    mapped.release()

        try:
            if workers > 1 and len(chain) > 5000:
                # Spawned, not forked: a forked worker would map (and, touching refcounts,
                # copy) the whole gateway heap; these get their run of the chain by pipe.
                pool = mp.get_context("spawn").Pool(
                    workers, initializer=_worker_start, initargs=([key_state(k) for k in zsks],)
                )
                try:
                    for part in pool.imap_unordered(_worker_sign, jobs()):
                        writer.add(part)
                    pool.close()
                finally:
                    pool.terminate()
                    pool.join()
            else:
                for job in jobs():
                    writer.add(sign_names(zsks, job))
        except BaseException:
            writer.abort()
            raise
        entries = writer.finish()
        dnskey, dnskey_count = self._sign_dnskey(ksks, window, now)
        with self._lock:
            self.chain = chain
            self.entries = entries
            self.changed_keys = None
            self.window = window
            self.dnskey = dnskey
            self.dnskey_count = dnskey_count
            self.nsec_count = 1 + len(zsks)
            self.keys = (ksks, zsks)
            self.signed_state = self.keyset.state(now)
            self._soa = (-1, (b"", b"", 0))
            self.signed_at = now
        memory.trim()  # the names and parts of the signing, freed
        self.seconds = time.monotonic() - started

    def _sign_dnskey(self, ksks: list[Key], window: Window, now: float) -> tuple[bytes, int]:
        origin = self.origin
        rdatas = [k.rdata for k in self.keyset.published(now)]
        rrs = b"".join(rr(b"\xc0\x0c", T_DNSKEY, DNSKEY_TTL, r) for r in rdatas)
        sigs = sign_rrset(ksks, origin, T_DNSKEY, DNSKEY_TTL, rdatas, window, b"\xc0\x0c")
        return rrs + sigs, len(rdatas) + len(ksks)

    def update(self, answers: Mapping[bytes, bytes], touched: set[str]) -> None:
        """Re-sign the numbers ``touched`` (E.164 digits) as ``answers`` now hold them,
        and the NSEC records whose next name changed.

        Queries read these maps while this runs, so the order matters: the new
        entries go in first, then the new chain replaces the old one (one
        assignment), then the entries of names that left are dropped.  A query
        thus never finds a name in the chain without its NSEC.
        """
        if not touched:
            return
        zsks = self.keys[1]
        window = self.window
        with self._lock:
            table = self.entries
            if not isinstance(table, FlatTable):
                return  # never signed: the next sign_all signs it all
            chain = self.chain.copy()
            dirty: set[str] = set()  # names whose NSEC must be made again
            gone: list[bytes] = []
            for digits in sorted(touched):
                key = digits[::-1].encode()
                if key in answers:
                    i = chain.insert(digits)
                    dirty.update(chain[max(i - 1, 0) : i + 1])
                else:
                    gone.append(key)
                    before = chain.remove(digits)
                    if before >= 0:
                        dirty.add(chain[before])
            changed = self.changed_keys
            for digits in dirty:
                i = chain.index(digits)
                if i < 0:
                    continue  # removed again by a later change of the same batch
                job = _job(self.origin, chain, answers, window, self.nsec_ttl, (i, i + 1))
                for key, value in signed_items(zsks, job):
                    table = table.put_growing(key, value)
                    if changed is not None:
                        changed.add(key)
            self.entries = table  # a new generation if a change did not fit
            self.chain = chain
            for key in gone:
                table.delete(key)
                if changed is not None:
                    changed.add(key)

    def snapshot(self, last: SignedSnapshot | None = None) -> SignedSnapshot:
        """A copy for a zone version (called under the table's lock, like its answers).

        With ``last``, the previous copy taken of this zone, only the entries changed
        since are read again (a block costs a C-level dict copy, not a walk of
        the table); the copy says which keys those were.
        """
        with self._lock:
            apex = SignedApex(
                self.origin,
                self.dnskey,
                tuple(self.keys[1]),
                self.window,
                self.nsec_ttl,
                self.chain.next_of(0),
            )
            changed = self.changed_keys
            self.changed_keys = set()  # log from here on, for the next copy
            if last is None or changed is None or last.origin != self.origin:
                return SignedSnapshot(apex, dict(self.entries.items()))
            entries = copy_changed(last.entries, self.entries, changed)
            return SignedSnapshot(apex, entries, frozenset(changed))

    # -- kept beside the table file: a restart signs nothing --------------------------

    def _file_meta(self, token: str) -> dict[str, object]:
        """What the kept entries were signed with and for (checked by :meth:`resume`)."""
        return {
            "token": token,
            "origin": self.origin,
            "nsec_ttl": self.nsec_ttl,
            "window": (self.window.inception, self.window.expiration),
            "signed_at": self.signed_at,
            "keys": self.signed_state,
        }

    @property
    def kept(self) -> bool:
        """Whether the entries are in a file of their own (:meth:`persist`) or there
        are none yet: nothing to copy."""
        table = self.entries
        return not isinstance(table, FlatTable) or table.path is not None

    def commit(self, height: int, stamp: int, token: str) -> None:
        """After the answer table committed ``height``/``stamp``: the same for the
        entries, when they are kept in a file of their own (:meth:`persist`)."""
        with self._lock:
            table = self.entries
            if isinstance(table, FlatTable) and table.path is not None:
                self.entries = table.commit_growing(height, stamp, self._file_meta(token))

    def persist(self, path: Path, height: int, stamp: int, token: str) -> None:
        """Keep the entries at ``path`` from now on (a copy of the unlinked file a
        signing wrote, made once, off the query path), committed as reflecting the
        answer table at ``height``/``stamp`` whose state token is ``token``."""
        with self._lock:
            table = self.entries
            if not isinstance(table, FlatTable):
                return
            table = table.commit_growing(height, stamp, self._file_meta(token))
            if table.path != path:
                table = table.compacted(path=path)
            self.entries = table

    def resume(self, path: Path, answers: Mapping[bytes, bytes], token: str) -> bool:
        """Serve the entries kept at ``path`` if they are the signatures of ``answers``
        (the table file committed at the same height and stamp, with ``token``),
        made with the keys in use now and not yet due for renewal: then nothing is
        signed but the DNSKEY set.  :attr:`not_reused` says why not."""
        self.not_reused = self._resume(path, answers, token)
        return not self.not_reused

    def _resume(self, path: Path, answers: Mapping[bytes, bytes], token: str) -> str:
        if not isinstance(answers, FlatTable):
            return "the answers are not a table file"
        try:
            table = FlatTable.open(path, writable=True)
            meta = table.meta
            if not isinstance(meta, dict):
                raise Damaged("no metadata")
            window = Window(*meta["window"])
            signed_at, state = float(meta["signed_at"]), meta["keys"]
            same = (meta["token"], meta["origin"], meta["nsec_ttl"]) == (
                token,
                self.origin,
                self.nsec_ttl,
            )
        except (Damaged, KeyError, TypeError, ValueError) as exc:
            return str(exc) if path.exists() else "none kept"
        now = time.time()
        if not table.owns:
            return "another process writes them"
        if not same or (table.height, table.stamp) != (answers.height, answers.stamp):
            return "made for another version of the table"
        if len(table) != len(answers) + 1:
            return f"{len(table) - 1} signed answers for {len(answers)} answers"
        try:
            if state != self.keyset.state(now):
                return "the keys or their timing changed since"
            ksks, zsks = self.keyset.signers(now)
        except DnssecError as exc:
            return str(exc)
        if now - signed_at >= self.refresh_after or window.expiration <= now:
            return "due for renewal"
        chain = Chain.of_keys(key for key in table if key)
        table.release()  # every key was read: not what serving keeps resident
        dnskey, dnskey_count = self._sign_dnskey(ksks, window, now)
        with self._lock:
            self.chain, self.entries, self.changed_keys = chain, table, None
            self.window, self.signed_at, self.signed_state = window, signed_at, state
            self.dnskey, self.dnskey_count = dnskey, dnskey_count
            self.nsec_count = 1 + len(zsks)
            self.keys = (ksks, zsks)
            self._soa = (-1, (b"", b"", 0))
        self.seconds = 0.0
        return ""

    def due(self, now: float) -> bool:
        """Whether to sign everything again: the signatures are old enough to renew, a
        key file changed, or a key's Publish/Activate/Inactive/Delete time passed."""
        if self.keyset.reread():
            return True
        if now - self.signed_at >= self.refresh_after or not self.window.expiration:
            return True
        try:
            return self.keyset.state(now) != self.signed_state
        except DnssecError:
            return False  # no key would sign: keep the last signatures until one does

    # -- the query side: picking bytes ------------------------------------------

    def __len__(self) -> int:
        """Numbers with a signed answer."""
        return len(self.entries) - (b"" in self.entries)

    def answer(self, key: bytes) -> bytes | None:
        """The signed answer of a served number (NAPTRs and RRSIGs), or None."""
        found = self.entries.get(key)
        return found[2 : 2 + ((found[0] << 8) | found[1])] if found and key else None

    def nsec(self, key: bytes) -> bytes | None:
        """The NSEC and RRSIGs of a served name (``b""``: the apex), or None."""
        found = self.entries.get(key)
        return found[2 + ((found[0] << 8) | found[1]) :] if found else None

    def soa(self, serial: int) -> tuple[bytes, bytes, int]:
        """The SOA RR of the zone at ``serial`` and its RRSIGs: (owned by the full name,
        for the authority section; owned by the pointer to the question, for an apex
        answer; how many RRs).

        The same SOA the unsigned answers carry (``ns``, ``hostmaster`` below the
        zone).  Signed once per serial, by :meth:`presign_soa` on the table's
        update thread when a change comes in (here only if that has not run yet).
        """
        cached = self._soa
        if cached[0] == serial:
            return cached[1]
        origin = self.origin
        ttl = self.negative_ttl
        rdata = (
            b"\x02ns"
            + origin
            + b"\x0ahostmaster"
            + origin
            + struct.pack(">IIIII", serial & 0xFFFFFFFF, 3600, 600, 1209600, ttl)
        )
        zsks = self.keys[1]
        made = []
        for owner in (origin, b"\xc0\x0c"):
            made.append(
                rr(owner, T_SOA, ttl, rdata)
                + sign_rrset(zsks, origin, T_SOA, ttl, [rdata], self.window, owner)
            )
        result = (made[0], made[1], 1 + len(zsks))
        self._soa = (serial, result)
        return result

    def presign_soa(self, serial: int) -> None:
        """Sign the SOA of a new serial off the query path (the table's update thread)."""
        self.soa(serial)

    def denial(self, name: str, cap: int) -> tuple[bool, bytes, int]:
        """(NODATA rather than NXDOMAIN, the NSEC RRs and RRSIGs, how many RRs) for a
        name that has no answer; ``name`` is its canonical-order key (see
        :func:`sort_key`) and ``cap`` how many leading characters are real labels."""
        chain = self.chain  # one version of the chain for the whole answer
        if cap == len(name) and chain.index(name) >= 0:
            own = self.nsec(name[::-1].encode())
            if own is not None:
                return True, own, self.nsec_count
        exists, indexes = chain.denial(name, cap)
        parts = [p for j in indexes if (p := self.nsec(chain[j][::-1].encode()))]
        return exists, b"".join(parts), self.nsec_count * len(parts)

    def expiry(self) -> int:
        """The earliest signature expiry (UNIX time), 0 before the first signing."""
        return self.window.expiration

    def key_text(self) -> str:
        """The keys in use, for ``status.enumer``: ``13/12345 ksk, 13/23456 zsk``."""
        now = time.time()
        parts = []
        for k in self.keyset.published(now):
            role = "ksk" if k.is_ksk else "zsk"
            state = "active" if k.active(now) else "published"
            parts.append(f"{k.algorithm}/{k.tag} {role} {state}")
        return ", ".join(parts)


def sort_key(prefix: bytes) -> tuple[str, int] | None:
    """The canonical-order key of the wire labels left of the zone, and how many of its
    characters are labels of the name, or None when the name is not dotted digits
    (a compact one-label number: served unsigned).

    Single-digit labels read from the right are the digits; a first other label
    sorts after the subtree of the digit it starts with (``"5~"``), before
    every digit (``"!"``) or after them all (``"~"``), so the NSEC found for it
    by bisection is the one a validator expects.
    """
    labels = []
    pos = 0
    while pos < len(prefix):
        ln = prefix[pos]
        labels.append(prefix[pos + 1 : pos + 1 + ln])
        pos += ln + 1
    digits = []
    for label in reversed(labels):
        if len(label) == 1 and 0x30 <= label[0] <= 0x39:
            digits.append(chr(label[0]))
            continue
        real = "".join(digits)
        first = label[0]
        if 0x30 <= first <= 0x39 and label.isdigit():
            return None
        if first < 0x30:
            return real + "!", len(real)
        if first <= 0x39:
            return real + chr(first) + "~", len(real)
        return real + "~", len(real)
    real = "".join(digits)
    return real, len(real)


# -- the signed zone as a whole: AXFR and zone export ---------------------------------


@dataclass(frozen=True)
class SignedApex:
    """What the apex records of one zone version are signed from."""

    origin: bytes
    dnskey: bytes  # the DNSKEY RRset and its RRSIGs, owned by the pointer c00c
    zsks: tuple[Key, ...]
    window: Window
    nsec_ttl: int
    first: str  # the first served name: the apex NSEC's next name

    def rrs(
        self, soa_rdata: bytes, soa_ttl: int, ns_rdatas: list[bytes], ns_ttl: int
    ) -> list[bytes]:
        """SOA, NS, DNSKEY and the apex NSEC with their RRSIGs (full owners), SOA first.

        The zone's own SOA and NS (``--ns``, ``--soa-*``) differ from what the
        gateway answers itself, so these few are signed here, once per version
        and origin (the transfer service keeps them: an IXFR must delete exactly
        the RRSIGs a secondary holds).
        """
        origin = self.origin
        zsks = list(self.zsks)
        out = [rr(origin, T_SOA, soa_ttl, soa_rdata)]
        out += split_rrs([sign_rrset(zsks, origin, T_SOA, soa_ttl, [soa_rdata], self.window)])
        out += [rr(origin, T_NS, ns_ttl, r) for r in ns_rdatas]
        out += split_rrs([sign_rrset(zsks, origin, T_NS, ns_ttl, ns_rdatas, self.window)])
        out += [origin + part[2:] for part in split_pointer_rrs(self.dnskey)]
        bitmap = type_bitmap((T_SOA, T_NS, T_RRSIG, T_NSEC, T_DNSKEY))
        out += split_rrs(
            [nsec_rrs(zsks, origin, "", self.first, bitmap, self.window, self.nsec_ttl)]
        )
        return out


@dataclass(frozen=True)
class SignedSnapshot:
    """The signed side of one zone version, copied with the answers it belongs to."""

    apex: SignedApex
    entries: dict[bytes, bytes]  # as SignedZone.entries
    #: The keys changed since the copy this one was made from (None: not known).
    changed: frozenset[bytes] | None = None

    @property
    def origin(self) -> bytes:
        return self.apex.origin

    def numbers(self) -> Iterator[bytes]:
        """The keys of the served numbers."""
        return (key for key in self.entries if key)

    def number_rrs(self, key: bytes) -> list[bytes]:
        """A number's NAPTRs, their RRSIGs and its NSEC and RRSIGs (full owners)."""
        return number_wire(self.origin, key, self.entries[key])


def entry(answer: bytes, nsec: bytes) -> bytes:
    """One value of :attr:`SignedZone.entries`."""
    return len(answer).to_bytes(2, "big") + answer + nsec


def number_wire(origin: bytes, key: bytes, value: bytes) -> list[bytes]:
    """The RRs of a number's entry (signed answer and NSEC), owners written out."""
    cut = 2 + ((value[0] << 8) | value[1])
    owner = digits_owner(key[::-1].decode("ascii"), origin)
    answer = [owner + part[2:] for part in split_pointer_rrs(value[2:cut])]
    return answer + split_rrs([value[cut:]])


@dataclass(frozen=True)
class SignedStep:
    """What changed in the signed zone from one version to the next: the apex of each,
    and per number (key, old entry, new entry), None where absent."""

    old: SignedApex
    new: SignedApex
    numbers: tuple[tuple[bytes, bytes | None, bytes | None], ...]


def signed_diff(old: SignedSnapshot, new: SignedSnapshot, limit: int) -> SignedStep | None:
    """The step from ``old`` to ``new``, or None when more than ``limit`` numbers changed
    (a full re-signing: the whole zone is the better transfer).

    ``new`` made from ``old`` knows its changed keys; otherwise every entry is
    compared (unchanged ones are usually the same bytes objects: found by identity).
    """
    if old.origin != new.origin:
        return None
    before, after = old.entries, new.entries
    changed: list[bytes] = []
    if new.changed is not None:
        changed = sorted(k for k in new.changed if k and before.get(k) != after.get(k))
    else:
        for key, value in after.items():
            if key and before.get(key) is not value and before.get(key) != value:
                changed.append(key)
                if len(changed) > limit:
                    return None
        changed += [key for key in before if key and key not in after]
    if len(changed) > limit:
        return None
    numbers = tuple((k, before.get(k), after.get(k)) for k in changed)
    return SignedStep(old.apex, new.apex, numbers)


def signed_path(table_path: Path) -> Path:
    """Where the signed entries of the answer table file at ``table_path`` are kept."""
    return table_path.with_name(table_path.name + ".signed")


def split_pointer_rrs(rrs: bytes) -> Iterator[bytes]:
    """The RRs of bytes whose owners are 2-byte pointers."""
    pos = 0
    while pos < len(rrs):
        end = pos + 12 + ((rrs[pos + 10] << 8) | rrs[pos + 11])
        yield rrs[pos:end]
        pos = end


def split_rrs(parts: Iterable[bytes]) -> list[bytes]:
    """The RRs of bytes whose owners are uncompressed names."""
    out = []
    for rrs in parts:
        pos = 0
        while pos < len(rrs):
            start = pos
            while rrs[pos]:
                pos += rrs[pos] + 1
            pos += 1
            end = pos + 10 + ((rrs[pos + 8] << 8) | rrs[pos + 9])
            out.append(rrs[start:end])
            pos = end
    return out
