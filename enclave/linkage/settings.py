"""One dataclass holds every choice of a linkage run; it round-trips through plain JSON.

``LinkageSettings`` says which comparisons to make, how to block, how to train (prior,
u-sampling budget and seed, EM blocking rules) and where to cut (prediction and clustering
thresholds), and on which backend. It never holds SQL of one dialect: comparisons and
blocking rules are described by columns and methods and turned into Splink objects only when
a linker is built, so one settings file (and a model trained with it) runs on DuckDB and Spark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from enclave.linkage.errors import SettingsInvalid

METHODS = (
    "name",  # exact (term-frequency adjusted), Jaro-Winkler >= .92, .88, .7
    "given_name",  # as "name", plus swapped with the surname and nickname-equal levels
    "date_of_birth",  # exact, transposed day/month, Levenshtein 1, within 1 month, 1 year, 10
    "postcode",  # full, sector, district, area (UK-shaped codes)
    "location",  # postcode and address line as one piece of evidence (see model.py)
    "exact",
    "jaro_winkler",
    "damerau_levenshtein",
)
LINK_TYPES = ("link_only", "link_and_dedupe", "dedupe_only")
BACKENDS = ("duckdb", "spark")
SWAPPED_NAMES = "swapped_names"  # the blocking rule l.given_name = r.surname and vice versa


@dataclass(frozen=True)
class ComparisonSpec:
    """How one column is compared.

    ``thresholds``: similarity thresholds (Jaro-Winkler) or edit distances (Damerau-
    Levenshtein); empty means the method's defaults. ``term_frequency``: adjust exact matches
    for how common the value is. ``also``: a second column the method reads (the address
    line of a ``location`` comparison).
    """

    column: str
    method: str
    thresholds: tuple[float, ...] = ()
    term_frequency: bool = False
    also: str | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingsInvalid(
                f"unknown comparison method {self.method!r} for {self.column}; "
                f"methods are: {', '.join(METHODS)}"
            )
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if (self.method == "location") != (self.also is not None):
            raise SettingsInvalid("a location comparison (and only it) names a second column")


BlockingRule = tuple[str, ...]  # columns that must be equal, or (SWAPPED_NAMES,)


@dataclass(frozen=True)
class LinkageSettings:
    """Every choice of a linkage run. See ``docs/linkage.md`` for what each one does."""

    comparisons: tuple[ComparisonSpec, ...]
    blocking_rules: tuple[BlockingRule, ...]
    deterministic_rules: tuple[BlockingRule, ...]
    em_blocking_rules: tuple[BlockingRule, ...]
    link_type: str = "link_only"
    recall: float = 0.8
    u_max_pairs: float = 1e6
    em_max_pairs: float | None = None
    seed: int = 42
    predict_threshold: float = 0.001
    cluster_threshold: float = 0.95
    predict_chunks: int = 1
    backend: str = "duckdb"
    threads: int = 2
    memory_limit: str | None = None
    retain_columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        # lists from JSON become tuples, so that equal settings compare equal
        object.__setattr__(self, "comparisons", tuple(self.comparisons))
        for name in ("blocking_rules", "deterministic_rules", "em_blocking_rules"):
            object.__setattr__(self, name, tuple(tuple(rule) for rule in getattr(self, name)))
        object.__setattr__(self, "retain_columns", tuple(self.retain_columns))
        self._check()

    def _check(self) -> None:
        if not self.comparisons:
            raise SettingsInvalid("a linkage needs at least one comparison")
        if not self.blocking_rules:
            raise SettingsInvalid("a linkage needs at least one blocking rule")
        if not self.em_blocking_rules:
            raise SettingsInvalid("training needs at least one EM blocking rule")
        if self.link_type not in LINK_TYPES:
            raise SettingsInvalid(f"link_type must be one of {', '.join(LINK_TYPES)}")
        if self.backend not in BACKENDS:
            raise SettingsInvalid(f"backend must be one of {', '.join(BACKENDS)}")
        if not 0 < self.recall <= 1:
            raise SettingsInvalid(f"recall must be in (0, 1]; got {self.recall}")
        for name in ("predict_threshold", "cluster_threshold"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise SettingsInvalid(f"{name} must be in [0, 1); got {value}")
        if self.cluster_threshold < self.predict_threshold:
            raise SettingsInvalid("cluster_threshold must not be below predict_threshold")
        if self.predict_chunks < 1 or self.threads < 1 or self.u_max_pairs < 1:
            raise SettingsInvalid("predict_chunks, threads and u_max_pairs must be at least 1")
        columns = [c.column for c in self.comparisons] + [
            c.also for c in self.comparisons if c.also
        ]
        if len(set(columns)) != len(columns):
            raise SettingsInvalid("each column may be compared only once")
        for rule in (*self.blocking_rules, *self.deterministic_rules, *self.em_blocking_rules):
            if not rule or not all(isinstance(c, str) and c for c in rule):
                raise SettingsInvalid(f"a blocking rule is a list of column names; got {rule!r}")

    @property
    def compared_columns(self) -> tuple[str, ...]:
        """Every column a comparison reads (the alias column rides along with given names)."""
        return tuple(c.column for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; ``from_dict`` of it gives back an equal object."""
        data = asdict(self)
        data["comparisons"] = [
            {**asdict(c), "thresholds": list(c.thresholds)} for c in self.comparisons
        ]
        for name in ("blocking_rules", "deterministic_rules", "em_blocking_rules"):
            data[name] = [list(rule) for rule in getattr(self, name)]
        data["retain_columns"] = list(self.retain_columns)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkageSettings:
        """Settings from ``to_dict`` output (or hand-written JSON).

        Raises:
            SettingsInvalid: unknown keys, missing required keys or invalid values.
        """
        if not isinstance(data, Mapping):
            raise SettingsInvalid("linkage settings must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsInvalid(f"unknown linkage setting(s): {', '.join(unknown)}")
        values = dict(data)
        try:
            values["comparisons"] = tuple(
                ComparisonSpec(
                    column=str(c["column"]),
                    method=str(c["method"]),
                    thresholds=tuple(c.get("thresholds", ())),
                    term_frequency=bool(c.get("term_frequency", False)),
                    also=c.get("also"),
                )
                for c in data["comparisons"]
            )
            for name in ("blocking_rules", "deterministic_rules", "em_blocking_rules"):
                values[name] = tuple(tuple(rule) for rule in data[name])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as error:
            raise SettingsInvalid(f"invalid linkage settings: {error}") from None


def default_settings(
    roles: Sequence[str],
    *,
    link_type: str = "link_only",
    backend: str = "duckdb",
    retain_columns: Sequence[str] = (),
    uk_postcodes: bool = True,
) -> LinkageSettings:
    """The recommended settings for the identifier roles present (spec section 3).

    Comparisons: names (term-frequency adjusted, with swapped-name and nickname levels on the
    given name), date of birth, sex, location (UK-shaped postcode and address line together;
    with ``uk_postcodes`` false, postcode by edit distance and address by Jaro-Winkler),
    house number, locality and national id, for whichever of those are present. Blocking:
    given + surname, swapped names, date of birth, national id, postcode + house number (or
    + surname), given name + postcode, surname + locality, address (+ house number),
    surname + house number. Prior from
    the national id and the name + date-of-birth rules; EM on date of birth, then on given
    name + surname.

    Raises:
        SettingsInvalid: too few roles to link on (a name and a date of birth, or an id).
    """
    have = set(roles)
    names = {"given_name", "surname"} <= have
    if not ((names and "date_of_birth" in have) or "national_id" in have):
        raise SettingsInvalid(
            "linking needs given name, surname and date of birth, or a national id; "
            f"found roles: {', '.join(sorted(have)) or 'none'}"
        )
    comparisons: list[ComparisonSpec] = []
    if "given_name" in have:
        method = "given_name" if "surname" in have else "name"
        comparisons.append(ComparisonSpec("given_name", method, term_frequency=True))
    if "surname" in have:
        comparisons.append(ComparisonSpec("surname", "name", term_frequency=True))
    if "date_of_birth" in have:
        comparisons.append(ComparisonSpec("date_of_birth", "date_of_birth"))
    if "sex" in have:
        comparisons.append(ComparisonSpec("sex", "exact"))
    if {"postcode", "address"} <= have and uk_postcodes:
        # one household shares both: counting them separately would count it twice
        comparisons.append(ComparisonSpec("postcode", "location", also="address"))
    elif "postcode" in have:
        comparisons.append(
            ComparisonSpec("postcode", "postcode")
            if uk_postcodes
            else ComparisonSpec("postcode", "damerau_levenshtein", (1, 2), term_frequency=True)
        )
    if "address" in have and not (uk_postcodes and "postcode" in have):
        comparisons.append(ComparisonSpec("address", "jaro_winkler", (0.9, 0.7)))
    if "house_number" in have:
        comparisons.append(ComparisonSpec("house_number", "exact", term_frequency=True))
    if "locality" in have:
        comparisons.append(ComparisonSpec("locality", "jaro_winkler", (0.9,)))
    if "national_id" in have:
        comparisons.append(ComparisonSpec("national_id", "damerau_levenshtein", (1, 2)))
    blocking: list[BlockingRule] = []
    deterministic: list[BlockingRule] = []
    if names:
        blocking += [("given_name", "surname"), (SWAPPED_NAMES,)]
    if "date_of_birth" in have:
        blocking.append(("date_of_birth",))
        if names:
            deterministic.append(("given_name", "surname", "date_of_birth"))
    if "national_id" in have:
        blocking.append(("national_id",))
        deterministic.insert(0, ("national_id",))
    if "postcode" in have:
        partner = "house_number" if "house_number" in have else "surname"
        if partner in have:
            blocking.append(("postcode", partner))
        if "given_name" in have:
            blocking.append(("given_name", "postcode"))
    if "locality" in have and "surname" in have:
        blocking.append(("surname", "locality"))
    if "address" in have:
        # the same address line catches people whose name and date of birth both went wrong
        blocking.append(("address", "house_number") if "house_number" in have else ("address",))
    if {"surname", "house_number"} <= have:
        blocking.append(("surname", "house_number"))
    # EM on date of birth, then on the names; not on postcode or address, which whole
    # households share (EM would learn that households are persons). A national id would
    # avoid relatives altogether, but ids are often too sparse for a stable estimate.
    em: list[BlockingRule] = [("date_of_birth",)] if "date_of_birth" in have else []
    if names:
        em.append(("given_name", "surname"))
    elif "national_id" in have:
        em.append(("national_id",))
    else:
        em.append(("postcode",))
    return LinkageSettings(
        comparisons=tuple(comparisons),
        blocking_rules=tuple(blocking),
        deterministic_rules=tuple(deterministic),
        em_blocking_rules=tuple(em),
        link_type=link_type,
        backend=backend,
        retain_columns=tuple(retain_columns),
    )
