"""Operators' credentials: argon2 passwords, hashed session tokens and API keys, limits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from enumer.verification.auth import API_KEY_PREFIX, Auth, AuthError, state_audit
from enumer.verification.db import StateDB
from enumer.verification.model import RateLimit

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


#: Cheap argon2 parameters: the tests check behaviour, not the cost.
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(tmp_path: Path, clock: Clock) -> Auth:
    return Auth(tmp_path / "state.db", clock=clock, hasher=FAST)


def test_passwords_are_argon2_hashes_and_sign_in_works(auth: Auth, tmp_path: Path) -> None:
    auth.add_user("alice", PASSWORD, "admin")
    stored = sqlite3.connect(tmp_path / "state.db").execute("SELECT * FROM users").fetchall()
    assert PASSWORD not in repr(stored)
    assert stored[0][1].startswith("$argon2id$")
    token, session = auth.login("alice", PASSWORD, "192.0.2.1")
    assert session.user.username == "alice" and session.user.is_admin
    again = auth.session(token)
    assert again is not None and again.csrf == session.csrf
    assert auth.session("not-a-token") is None


def test_a_new_state_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "state.db"
    Auth(path, hasher=FAST)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_session_tokens_and_api_keys_are_stored_hashed(auth: Auth, tmp_path: Path) -> None:
    auth.add_user("bob", PASSWORD, "operator")
    token, _ = auth.login("bob", PASSWORD, "192.0.2.1")
    key = auth.add_key("bob", "billing system")
    assert key.startswith(API_KEY_PREFIX)
    dump = "\n".join(sqlite3.connect(tmp_path / "state.db").iterdump())
    assert token not in dump and key not in dump
    user = auth.api_user(key)
    assert user is not None and user.username == "bob" and not user.is_admin
    assert auth.api_user(key + "x") is None
    assert auth.api_user(None) is None
    assert auth.api_user("Bearer " + key) is None
    assert [u.keys for u in auth.list_users()] == [1]


def test_wrong_password_and_unknown_user_get_the_same_answer(auth: Auth) -> None:
    auth.add_user("carol", PASSWORD, "operator")
    with pytest.raises(AuthError) as wrong:
        auth.login("carol", "not the password", "192.0.2.2")
    with pytest.raises(AuthError) as unknown:
        auth.login("nobody", PASSWORD, "192.0.2.2")
    assert wrong.value.status == unknown.value.status == 401
    assert str(wrong.value) == str(unknown.value) == "wrong user name or password"


def test_unknown_users_cost_an_argon2_verification(tmp_path: Path) -> None:
    """No shortcut for unknown user names: their timing must not tell them apart."""
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append("verify")
            return super().verify(hash, password)

    auth = Auth(tmp_path / "s.db", hasher=Counting(time_cost=1, memory_cost=8, parallelism=1))
    with pytest.raises(AuthError):
        auth.login("ghost", PASSWORD, "192.0.2.3")
    assert calls == ["verify"]


def test_failed_sign_ins_are_limited_per_client(tmp_path: Path, clock: Clock) -> None:
    auth = Auth(tmp_path / "s.db", clock=clock, hasher=FAST, login_limit=RateLimit(3, 900))
    auth.add_user("dave", PASSWORD, "operator")
    for _ in range(3):
        with pytest.raises(AuthError) as exc:
            auth.login("dave", "wrong password!", "198.51.100.7")
        assert exc.value.status == 401
    # The right password does not help once the limit is reached: no more guesses.
    with pytest.raises(AuthError) as limited:
        auth.login("dave", PASSWORD, "198.51.100.7")
    assert limited.value.status == 429
    # Another client is not affected, and the window passes.
    auth.login("dave", PASSWORD, "198.51.100.8")
    clock.now += 901
    auth.login("dave", PASSWORD, "198.51.100.7")


def test_sessions_expire_after_twelve_idle_hours(auth: Auth, clock: Clock) -> None:
    auth.add_user("erin", PASSWORD, "operator")
    token, _ = auth.login("erin", PASSWORD, "192.0.2.4")
    clock.now += 11 * 3600
    assert auth.session(token) is not None  # use restarts the idle clock
    clock.now += 11 * 3600
    assert auth.session(token) is not None
    clock.now += 12 * 3600 + 1
    assert auth.session(token) is None
    assert auth.session(token) is None  # and it is gone for good


def test_logout_ends_the_session(auth: Auth) -> None:
    auth.add_user("frank", PASSWORD, "operator")
    token, _ = auth.login("frank", PASSWORD, "192.0.2.5")
    auth.logout(token)
    assert auth.session(token) is None


@pytest.mark.parametrize(
    ("username", "password", "role", "message"),
    [
        ("gina", "short", "operator", "too short"),
        ("gina", "x" * 2000, "operator", "too long"),
        ("gi na", PASSWORD, "operator", "bad user name"),
        ("", PASSWORD, "operator", "bad user name"),
        ("gina", PASSWORD, "root", "bad role"),
    ],
)
def test_bad_users_are_refused(
    auth: Auth, username: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        auth.add_user(username, password, role)
    assert auth.list_users() == []


def test_existing_users_are_replaced_only_on_request(auth: Auth) -> None:
    auth.add_user("hank", PASSWORD, "operator")
    token, _ = auth.login("hank", PASSWORD, "192.0.2.6")
    with pytest.raises(AuthError, match="exists") as exc:
        auth.add_user("hank", "another password", "admin")
    assert exc.value.status == 409
    auth.add_user("hank", "another password", "admin", replace=True)
    assert auth.session(token) is None  # a new password ends the old sessions
    _, session = auth.login("hank", "another password", "192.0.2.6")
    assert session.user.is_admin


def test_keys_need_an_existing_user(auth: Auth) -> None:
    with pytest.raises(AuthError, match="no user") as exc:
        auth.add_key("nobody")
    assert exc.value.status == 404


def test_sign_ins_and_user_changes_go_into_the_service_audit_log(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "state.db"
    auth = Auth(path, clock=clock, hasher=FAST, on_event=state_audit(path, clock))
    auth.add_user("ivy", PASSWORD, "admin", by="cli")
    auth.add_key("ivy", "crm")
    with pytest.raises(AuthError):
        auth.login("ivy", "wrong password!", "203.0.113.9")
    token, _ = auth.login("ivy", PASSWORD, "203.0.113.9")
    auth.logout(token)
    db = StateDB(path)
    entries = [(e.actor, e.action) for e in reversed(db.audit())]
    assert entries == [
        ("cli", "user.added"),
        ("cli", "key.added"),
        ("anonymous@203.0.113.9", "login.failed"),
        ("operator:ivy", "login"),
        ("operator:ivy", "logout"),
    ]
    assert db.audit_problem() is None
    text = repr(db.audit())
    assert PASSWORD not in text and token not in text


def test_a_users_table_from_before_disabling_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(
        "CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, "
        "role TEXT NOT NULL CHECK (role IN ('operator', 'admin')), created REAL NOT NULL)"
    )
    raw.execute("INSERT INTO users VALUES ('olga', 'x', 'operator', 1.0)")
    raw.commit()
    raw.close()
    auth = Auth(path, hasher=FAST)
    assert [(u.username, u.disabled) for u in auth.list_users()] == [("olga", None)]
    auth.disable_user("olga")
    assert auth.list_users()[0].disabled is not None
    with pytest.raises(AuthError, match="no user nobody"):
        auth.remove_user("nobody")
    with pytest.raises(AuthError, match="bad key id"):
        auth.revoke_key("xyz")
