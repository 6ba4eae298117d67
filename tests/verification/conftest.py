"""Fixtures of the verification service: a real ledger on disk with a verifier
the wallet signs for, ENUM records owned by wallet addresses, a recording
caller and a clock the test moves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from enumer.nvs.ledger import Ledger
from enumer.verification.calls import CallOutcome
from enumer.verification.model import Policy
from enumer.verification.service import Request, VerificationService
from enumer.verifier import create_verifier

VERIFIER = "ver:test"
NUMBER = "15551234567"
NAME = f"enum:{NUMBER}:0"
E2U = "E2U+sip=100|10|!^(.*)$!sip:\\1@pbx.example.com!"
#: The country codes the test service calls (+1 and +44, the test numbers' countries).
SERVED = ("1", "44")
#: A fixed start for the service's clock (the ledger's height follows the real one).
T0 = 1_700_000_000.0


class Clock:
    """The service's clock, moved by the test instead of by sleeping."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordingCaller:
    """A Caller that records what it was asked to deliver, instead of ringing a phone.

    ``outcome`` is what it reports; ``gate``, when set, holds ``place`` until the
    test releases it (to have a call in flight); ``entered`` is set once a call
    has started.
    """

    method: str = "test-call"
    hint: str = "the code the test caller recorded"
    outcome: CallOutcome = field(default_factory=lambda: CallOutcome(True, "180 Ringing"))
    calls: list[tuple[str, str]] = field(default_factory=list)
    gate: threading.Event | None = None
    entered: threading.Event = field(default_factory=threading.Event)

    def place(self, digits: str, code: str) -> CallOutcome:
        self.calls.append((digits, code))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        return self.outcome

    @property
    def last_code(self) -> str:
        return self.calls[-1][1]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = Ledger(tmp_path / "store", "regtest")
    yield store
    store.close()


@pytest.fixture
def verifier_address(ledger: Ledger) -> str:
    """The owner address of ver:test, whose key the ledger's wallet holds."""
    return create_verifier(ledger, VERIFIER, "Test verifier", 3650)


MakeRecord = Callable[..., tuple[str, str]]


@pytest.fixture
def make_record(ledger: Ledger) -> MakeRecord:
    """``make_record(digits, index=0, days=365, value=E2U)`` -> (name, owner address):
    a record owned by a fresh wallet address, as its owner would publish it."""

    def make(
        digits: str = NUMBER, index: int = 0, days: int = 365, value: str = E2U
    ) -> tuple[str, str]:
        owner = ledger.get_new_address()
        name = f"enum:{digits}:{index}"
        ledger.name_new(name, value, days, owner)
        return name, owner

    return make


@pytest.fixture
def record(make_record: MakeRecord) -> tuple[str, str]:
    return make_record()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def caller() -> RecordingCaller:
    return RecordingCaller()


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "verifier-test.db"


MakeService = Callable[..., VerificationService]


@pytest.fixture
def make_service(
    state_path: Path,
    ledger: Ledger,
    verifier_address: str,
    caller: RecordingCaller,
    clock: Clock,
) -> Iterator[MakeService]:
    """``make_service(per_client=RateLimit(2, 60), ...)``: the service for ver:test on
    the ledger with a Policy changed by the keyword arguments (allowing :data:`SERVED`
    unless ``allow_prefixes`` is given; ``no_caller=True``:
    no trunk; ``trust``, ``tollfree`` and ``path`` go to the service itself)."""
    made: list[VerificationService] = []

    def make(
        no_caller: bool = False,
        trust: str | None = None,
        tollfree: str = "",
        path: Path | None = None,
        **changes: Any,
    ) -> VerificationService:
        svc = VerificationService(
            str(path or state_path),
            ledger,
            "test",
            None if no_caller else caller,
            # The countries the test numbers are in (the allow-list is empty by default).
            Policy(**{"allow_prefixes": SERVED, **changes}),
            clock,
            trust=trust,
            tollfree=tollfree,
        )
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture
def service(make_service: MakeService) -> VerificationService:
    return make_service()


def owner_signature(ledger: Ledger, request: Request) -> str:
    """What the owner's wallet answers to ``signmessage OWNER "CHALLENGE"``."""
    return ledger.sign_message(request.owner, request.challenge)
