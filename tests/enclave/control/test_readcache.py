"""The read cache: results kept while the state version stands still, and never one moment
longer. Every write transaction moves the version on; what the cache serves must change on
the very next call after a suspension, a logout, a token's revocation or its expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from enclave.control import readcache
from enclave.control.context import Context, with_read_cache
from enclave.control.db import VersionReader, state_version, transaction
from enclave.control.errors import AuthenticationFailed
from enclave.control.readcache import ReadCache
from enclave.control.service import login_guard, people, tokens
from tests.enclave.control.factories import FakeClock, World
from tests.enclave.control.mfa import fresh_code


class Calls:
    """A compute function that counts how often it ran."""

    def __init__(self, value: object) -> None:
        self.value, self.n = value, 0

    def __call__(self) -> object:
        self.n += 1
        return self.value


def test_a_result_is_kept_for_its_version_and_dropped_for_a_newer_one() -> None:
    cache, compute = ReadCache(), Calls("rows")
    assert cache.get(3, "k", compute) == "rows"
    assert cache.get(3, "k", compute) == "rows"
    assert compute.n == 1
    assert cache.get(4, "k", compute) == "rows"  # the database moved on: computed again
    assert compute.n == 2
    assert len(cache) == 1


def test_a_reader_behind_the_newest_version_computes_and_keeps_nothing() -> None:
    cache, fresh, old = ReadCache(), Calls("new"), Calls("old")
    cache.get(5, "k", fresh)
    assert cache.get(4, "k", old) == "old"  # never served the newer state's result either
    assert cache.get(5, "k", fresh) == "new" and fresh.n == 1


def test_the_cache_stops_keeping_when_full() -> None:
    cache = ReadCache(max_entries=2)
    for key in "abc":
        cache.get(1, key, Calls(key))
    assert len(cache) == 2
    compute = Calls("c")
    cache.get(1, "c", compute)
    assert compute.n == 1


def test_a_request_scope_reads_the_version_once_until_it_writes() -> None:
    reads = Calls(7)
    readcache.begin_request()
    try:
        assert readcache.version(reads) == 7 and readcache.version(reads) == 7
        assert reads.n == 1
        readcache.unpin()  # as after a write transaction in the request
        readcache.version(reads)
        assert reads.n == 2
    finally:
        readcache.end_request()
    readcache.version(reads)
    readcache.version(reads)  # outside a scope, every call reads
    assert reads.n == 4


def test_every_committed_write_moves_the_version_and_reads_do_not(
    ctx: Context, world: World
) -> None:
    before = state_version(ctx.engine)
    with transaction(ctx.engine, readonly=True):
        pass
    assert state_version(ctx.engine) == before
    people.set_active(ctx, world.admin, world.nobody, active=False, reason="test")
    assert state_version(ctx.engine) == before + 1
    with pytest.raises(RuntimeError), transaction(ctx.engine):
        raise RuntimeError("rolled back")
    assert state_version(ctx.engine) == before + 1


@pytest.fixture
def cached(ctx: Context) -> Context:
    return with_read_cache(ctx)


def _selects(ctx: Context) -> list[str]:
    seen: list[str] = []
    event.listen(
        ctx.engine,
        "before_cursor_execute",
        lambda *a: seen.append(str(a[2])) if str(a[2]).startswith("SELECT") else None,
    )
    return seen


def test_a_cached_session_ends_on_the_next_call_after_suspension_or_logout(
    cached: Context, world: World
) -> None:
    person = people.get_person(cached, world.checker, world.checker)
    assert login_guard.session_person(cached, person.uuid, "sid-1") == person
    seen = _selects(cached)
    assert login_guard.session_person(cached, person.uuid, "sid-1") == person
    assert [s for s in seen if "state_version" not in s] == []  # only the state version
    login_guard.logout(cached, world.checker, "sid-1")
    assert login_guard.session_person(cached, person.uuid, "sid-1") is None
    assert login_guard.session_person(cached, person.uuid, "sid-2") == person
    people.set_active(cached, world.admin, world.checker, active=False, reason="breach")
    assert login_guard.session_person(cached, person.uuid, "sid-2") is None


def test_a_cached_token_is_refused_at_once_when_revoked_or_its_owner_suspended(
    cached: Context, world: World
) -> None:
    code = fresh_code(cached, world.checker)
    first = tokens.issue_token(cached, world.checker, world.checker, label="a", totp=code)
    second = tokens.issue_token(cached, world.researcher, world.researcher, label="b")
    for issued in (first, second):
        tokens.verify_token(cached, issued.token)
        tokens.verify_token(cached, issued.token)
    tokens.revoke_token(cached, world.checker, first.info.uuid)
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(cached, first.token)
    people.set_active(cached, world.admin, world.researcher, active=False, reason="breach")
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(cached, second.token)


def test_a_cached_token_expires_by_the_clock_with_nothing_written(
    cached: Context, world: World, clock: FakeClock
) -> None:
    issued = tokens.issue_token(
        cached,
        world.checker,
        world.checker,
        label="short",
        lifetime=timedelta(hours=1),
        totp=fresh_code(cached, world.checker),
    )
    assert tokens.verify_token(cached, issued.token).email == world.checker
    version = state_version(cached.engine)
    clock.advance(hours=1)
    assert state_version(cached.engine) == version  # the cached answer is still current ...
    with pytest.raises(AuthenticationFailed):
        tokens.verify_token(cached, issued.token)  # ... but the expiry is checked on it


def test_the_version_reader_sees_each_write_at_once_and_leaves_no_transaction_open(
    ctx: Context,
) -> None:
    name = f"test-reader-{uuid.uuid4().hex[:12]}"
    reader = VersionReader(ctx.engine, name)
    try:
        before = reader()
        assert before == state_version(ctx.engine)
        with transaction(ctx.engine):
            pass
        assert reader() == before + 1  # committed by another connection: seen by the next read
        if ctx.engine.dialect.name == "postgresql":
            with ctx.engine.connect() as connection:
                states = connection.execute(
                    text("SELECT state FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": name},
                ).scalars()
                assert list(states) == ["idle"]  # autocommit: no transaction left open
    finally:
        reader.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_version_reader_survives_its_connection_being_killed(ctx: Context) -> None:
    name = f"test-reader-{uuid.uuid4().hex[:12]}"  # other workers' readers are not touched
    reader = VersionReader(ctx.engine, name)
    try:
        first = reader()
        with ctx.engine.connect() as connection:  # what a server restart does to it
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
        assert killed == 1
        with transaction(ctx.engine):
            pass
        assert reader() == first + 1  # the dead connection fell back to the standard read
        assert reader() == first + 1  # and a fresh one serves the next
    finally:
        reader.close()
