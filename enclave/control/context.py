"""The explicit dependencies of every service call: database, data directory, clock, hooks."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine

from enclave.control import readcache
from enclave.control.db import VersionReader, make_engine, require_current
from enclave.control.standing import StandingPolicy
from enclave.control.workspace import FileKeyDestroyer, KeyDestroyer
from enclave.settings import Settings

T = TypeVar("T")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    """Passed as the first argument of every service function.

    ``clock`` returns aware datetimes (tests pass a fixed one); ``key_destroyer`` is called when
    a project closes and defaults to deleting ``<data_dir>/keys/<slug>`` and ``<slug>.*``.
    ``policy`` is what standing requires beyond the records kept (``enclave.control.standing``).
    """

    engine: Engine
    data_dir: Path
    clock: Callable[[], datetime] = utcnow
    key_destroyer: KeyDestroyer | None = None
    token_lifetime: timedelta = timedelta(days=30)
    read_cache: readcache.ReadCache | None = None
    version_reader: VersionReader | None = None
    policy: StandingPolicy = field(default_factory=StandingPolicy)
    destroyer: KeyDestroyer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        chosen = self.key_destroyer or FileKeyDestroyer(self.data_dir / "keys")
        object.__setattr__(self, "destroyer", chosen)
        if self.read_cache is not None and self.version_reader is None:
            object.__setattr__(self, "version_reader", VersionReader(self.engine))

    def now(self) -> datetime:
        """The clock's time in UTC; raises ValueError if the clock returns a naive datetime."""
        moment = self.clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return moment.astimezone(UTC)

    def today(self) -> date:
        """Today's date in UTC: expiry and project dates are compared against it."""
        return self.now().date()

    def cached(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, or its result kept from an earlier call at the same state version
        when this context has a read cache (``enclave.control.readcache``)."""
        if self.read_cache is None or self.version_reader is None:
            return compute()
        seen = readcache.version(self.version_reader)
        return self.read_cache.get(seen, key, compute)

    def close(self) -> None:
        """Release the database connections (the version reader's with the engine's)."""
        self.engine.dispose()


def with_read_cache(ctx: Context) -> Context:
    """``ctx`` with a read cache (a server process's own), unless it has one already."""
    return ctx if ctx.read_cache is not None else replace(ctx, read_cache=readcache.ReadCache())


def open_context(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    key_destroyer: KeyDestroyer | None = None,
    check_schema: bool = True,
) -> Context:
    """Build a Context from settings; raises ControlError if the schema is not current."""
    engine = make_engine(settings.database_url)
    if check_schema:
        try:
            require_current(engine)
        except Exception:
            engine.dispose()
            raise
    return Context(
        engine=engine,
        data_dir=settings.data_dir,
        clock=clock,
        key_destroyer=key_destroyer,
        token_lifetime=timedelta(days=settings.token_lifetime_days),
        policy=standing_policy(settings),
    )


def standing_policy(settings: Settings) -> StandingPolicy:
    """The standing policy the settings ask for."""
    return StandingPolicy(
        required_project_items=settings.required_project_compliance,
        required_training=settings.required_training,
        organisation_assurance=settings.organisation_assurance_required,
        user_agreement_version=settings.user_agreement_version,
        warning_days=settings.compliance_warning_days,
    )
