"""Per-agency schemas of delivered tables, validated with pandera, row by row.

A ``TableSchema`` lists the fields a table must have (no more, no fewer: an unexpected
column is refused, which is how identifiers are kept out of content tables), each with a
kind (record key, text, category, whole number, number, date, Y/N flag), whether it may be
missing, its sensitivity class for the control plane and, for quasi-identifiers, how a
research extract coarsens it. ``validate`` returns every failing value as a ``RowError``
with its file and line; ``typed`` converts a valid text frame to proper types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from enclave.linkage.errors import RowError

KINDS = ("key", "record_ref", "text", "category", "integer", "number", "date", "flag")
COARSENINGS = ("year", "month", "area", "keep")
SENSITIVITIES = ("direct_identifier", "quasi_identifier", "sensitive", "other")
EARLIEST = date(1900, 1, 1)


@dataclass(frozen=True)
class Field:
    """One column of a delivered table.

    ``kind``: key (the record key: present, and unique in identifier files), record_ref
    (another record's key in the same delivery), text, category (one of ``values``), integer
    and number (between ``minimum`` and ``maximum``), date (in ``date_format``), flag (Y/N).
    ``coarsen``: how extracts coarsen a quasi-identifier (year, month, area or keep).
    """

    name: str
    kind: str
    sensitivity: str = "other"
    required: bool = False
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    date_format: str = "%Y-%m-%d"
    coarsen: str | None = None
    description: str = ""
    not_in_future: bool = False  # dates of birth

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown field kind {self.kind!r}")
        if self.sensitivity not in SENSITIVITIES:
            raise ValueError(f"unknown sensitivity {self.sensitivity!r}")
        if self.coarsen is not None and self.coarsen not in COARSENINGS:
            raise ValueError(f"unknown coarsening {self.coarsen!r}")
        if self.sensitivity == "quasi_identifier" and self.coarsen is None:
            raise ValueError(f"quasi-identifier {self.name} needs a coarsening rule")


@dataclass(frozen=True)
class TableSchema:
    """A table's fields; ``unique_key`` says whether the record key is unique per row."""

    name: str
    fields: tuple[Field, ...]
    unique_key: bool = False
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        """The field called ``name``; KeyError if absent."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description (stored beside content-zone files)."""
        return {
            "name": self.name,
            "unique_key": self.unique_key,
            "fields": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "sensitivity": f.sensitivity,
                    "coarsen": f.coarsen,
                    "description": f.description,
                }
                for f in self.fields
            ],
        }


def _vectorised(fn: Callable[[pd.Series], pd.Series], error: str) -> pa.Check:
    return pa.Check(fn, error=error)


def _checks(f: Field, today: date) -> list[pa.Check]:
    if f.kind in ("key", "record_ref"):
        return [
            _vectorised(
                lambda s: s.str.fullmatch(r"[A-Za-z0-9_.:-]{1,64}"),
                "not a record key (1-64 letters, digits, _ . : -)",
            )
        ]
    if f.kind == "text":
        return [
            _vectorised(
                lambda s: (s.str.len() <= 200) & ~s.str.contains(r"[\x00-\x1f]", regex=True),
                "text longer than 200 characters or with control characters",
            )
        ]
    if f.kind in ("category", "flag"):
        allowed = f.values if f.kind == "category" else ("Y", "N")
        return [_vectorised(lambda s: s.isin(allowed), f"not one of {', '.join(allowed)}")]
    if f.kind in ("integer", "number"):
        pattern = r"-?\d+" if f.kind == "integer" else r"-?\d+(\.\d+)?"
        lo = float("-inf") if f.minimum is None else f.minimum
        hi = float("inf") if f.maximum is None else f.maximum
        noun = "a whole number" if f.kind == "integer" else "a number"
        return [
            _vectorised(
                lambda s: (
                    s.str.fullmatch(pattern) & pd.to_numeric(s, errors="coerce").between(lo, hi)
                ),
                f"not {noun} between {lo:g} and {hi:g}",
            )
        ]
    fmt = f.date_format
    latest = today if f.not_in_future else date(2100, 12, 31)
    return [
        _vectorised(
            lambda s: pd.to_datetime(s, format=fmt, errors="coerce").notna(),
            f"not a valid date in the format {fmt} (an impossible date, or another format)",
        ),
        _vectorised(
            lambda s: _in_range(s, fmt, EARLIEST, latest),
            f"date outside {EARLIEST.isoformat()}..{latest.isoformat()}",
        ),
    ]


def _in_range(values: pd.Series, fmt: str, lo: date, hi: date) -> pd.Series:
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    ok = parsed.isna() | parsed.between(pd.Timestamp(lo), pd.Timestamp(hi))
    return ok


def pandera_schema(schema: TableSchema, *, today: date) -> pa.DataFrameSchema:
    """The pandera schema over text columns (every check works on strings)."""
    columns = {
        f.name: pa.Column(
            nullable=not (f.required or f.kind == "key"),
            unique=f.kind == "key" and schema.unique_key,
            checks=_checks(f, today),
            required=True,
        )
        for f in schema.fields
    }
    return pa.DataFrameSchema(columns, strict=False)


def validate(
    frame: pd.DataFrame,
    schema: TableSchema,
    *,
    file: str,
    lines: Sequence[int],
    today: date,
) -> list[RowError]:
    """Every problem of ``frame`` (text columns) against ``schema``, by file and line.

    Missing and unexpected columns are reported on the header line (1); failing values on
    their row's line, naming the column and the rule. Duplicate record keys are reported on
    every line that repeats an earlier key.
    """
    errors: list[RowError] = []
    present = list(frame.columns)
    missing = [c for c in schema.columns if c not in present]
    extra = [c for c in present if c not in schema.columns]
    for column in missing:
        errors.append(RowError(file, 1, column, "required column is missing"))
    for column in extra:
        errors.append(
            RowError(file, 1, column, f"unexpected column (not in the {schema.name} schema)")
        )
    if missing or frame.empty:
        return errors
    try:
        pandera_schema(schema, today=today).validate(frame[list(schema.columns)], lazy=True)
    except SchemaErrors as failure:
        errors += _row_errors(failure.failure_cases, schema, file, lines, frame)
    return sorted(errors, key=lambda e: (e.line, e.column))


def _row_errors(
    cases: pd.DataFrame,
    schema: TableSchema,
    file: str,
    lines: Sequence[int],
    frame: pd.DataFrame,
) -> list[RowError]:
    out: list[RowError] = []
    seen: set[tuple[int, str, str]] = set()
    for record in cases.to_dict("records"):
        index, column, check = record["index"], str(record["column"]), str(record["check"])
        if index is None or pd.isna(index):
            out.append(RowError(file, 1, column, check))
            continue
        row = int(index)
        if check == "not_nullable":
            message = "missing value"
        elif check == "field_uniqueness":
            first = frame.index[frame[column] == frame.at[row, column]][0]
            if first == row:
                continue  # the first occurrence is not the duplicate
            value = record["failure_case"]
            message = f"duplicate record key {value!r} (first on line {lines[first]})"
        else:
            message = f"{record['failure_case']!r}: {check}"
        key = (row, column, message)
        if key not in seen:
            seen.add(key)
            out.append(RowError(file, lines[row], column, message))
    return out


def typed(frame: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """A valid text frame with typed columns: dates as datetime64[ms], whole numbers as
    Int64, numbers as float64, everything else as string."""
    out = pd.DataFrame(index=frame.index)
    for f in schema.fields:
        values = frame[f.name]
        if f.kind == "date":
            out[f.name] = pd.to_datetime(values, format=f.date_format, errors="coerce").astype(
                "datetime64[ms]"
            )
        elif f.kind == "integer":
            out[f.name] = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif f.kind == "number":
            out[f.name] = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            out[f.name] = values.astype("string")
    return out.reset_index(drop=True)


def _key(description: str = "the custodian's random record key") -> Field:
    return Field("record_key", "key", "direct_identifier", True, description=description)


def _date(name: str, required: bool = False, description: str = "") -> Field:
    return Field(name, "date", "other", required, description=description)


DIAGNOSES = (
    "routine",
    "respiratory",
    "musculoskeletal",
    "mental_health",
    "injury",
    "infection",
    "cardiovascular",
    "fasd",
)
OFFENCES = ("theft", "violence", "drugs", "criminal_damage", "public_order", "motoring", "fraud")
DISPOSALS = ("custody", "community_order", "fine", "caution")

DEMOGRAPHICS = TableSchema(
    "demographics",
    (
        _key(),
        Field(
            "birth_month",
            "text",
            "quasi_identifier",
            coarsen="year",
            description="month of birth YYYY-MM (extracts: year)",
        ),
        Field(
            "sex",
            "category",
            "quasi_identifier",
            values=("f", "m"),
            coarsen="keep",
            description="f or m",
        ),
        Field(
            "postcode_district",
            "text",
            "quasi_identifier",
            coarsen="area",
            description="postcode district (extracts: area)",
        ),
    ),
    unique_key=True,
    description="derived by the linkage unit from the identifiers, already coarsened",
)

SCHEMAS: Mapping[str, TableSchema] = MappingProxyType(
    {
        "health.physician_visits": TableSchema(
            "health.physician_visits",
            (
                _key(),
                _date("visit_date", True),
                Field("diagnosis_group", "category", "sensitive", True, DIAGNOSES),
                Field("provider_type", "category", values=("gp", "specialist")),
            ),
        ),
        "health.hospitalisations": TableSchema(
            "health.hospitalisations",
            (
                _key(),
                _date("admission_date", True),
                _date("discharge_date"),
                Field("diagnosis_group", "category", "sensitive", True, DIAGNOSES),
            ),
        ),
        "education.enrolments": TableSchema(
            "education.enrolments",
            (
                _key(),
                Field("school_year", "integer", required=True, minimum=1990, maximum=2100),
                Field("grade", "integer", required=True, minimum=0, maximum=12),
                Field("school_region", "text"),
                Field("special_needs", "flag", "sensitive"),
            ),
        ),
        "education.attainment": TableSchema(
            "education.attainment",
            (
                _key(),
                Field("school_year", "integer", required=True, minimum=1990, maximum=2100),
                Field("grade", "integer", required=True, minimum=0, maximum=12),
                Field("assessment_score", "integer", minimum=0, maximum=1000),
                Field("diploma", "flag"),
            ),
        ),
        "human_services.income_support": TableSchema(
            "human_services.income_support",
            (
                _key(),
                _date("start_date", True),
                _date("end_date"),
                Field(
                    "programme",
                    "category",
                    values=("basic", "employment_support", "disability_allowance"),
                ),
                Field("monthly_amount", "number", "sensitive", minimum=0, maximum=100_000),
            ),
        ),
        "human_services.child_support_dependents": TableSchema(
            "human_services.child_support_dependents",
            (
                _key(),
                Field(
                    "guardian_record_key",
                    "record_ref",
                    description="the guardian's record (extracts: the guardian's pseudonym)",
                ),
                _date("case_start", True),
                _date("case_end"),
            ),
        ),
        "human_services.disability_services": TableSchema(
            "human_services.disability_services",
            (
                _key(),
                Field(
                    "service_type",
                    "category",
                    "sensitive",
                    True,
                    ("respite", "therapy", "aids_and_equipment", "supported_living"),
                ),
                _date("start_date", True),
                _date("end_date"),
            ),
        ),
        "justice.offences": TableSchema(
            "justice.offences",
            (
                _key(),
                Field("offence_id", "text", required=True),
                _date("offence_date", True),
                Field("offence_group", "category", "sensitive", True, OFFENCES),
            ),
        ),
        "justice.convictions": TableSchema(
            "justice.convictions",
            (
                _key(),
                Field("offence_id", "text", required=True),
                _date("conviction_date", True),
                Field("disposal", "category", "sensitive", True, DISPOSALS),
                Field("sentence_months", "integer", minimum=0, maximum=600),
            ),
        ),
        "justice.custody": TableSchema(
            "justice.custody",
            (_key(), _date("reception_date", True), _date("release_date")),
        ),
        "service_provider.interventions": TableSchema(
            "service_provider.interventions",
            (
                _key(),
                Field("programme", "text", required=True),
                _date("intervention_start", True),
                _date("intervention_end"),
            ),
        ),
    }
)


@dataclass(frozen=True)
class IdentifierLayout:
    """How one custodian's identifier file is laid out: the record key column, role ->
    column, other (local) identifier columns, the date-of-birth format and sex codes."""

    record_key: str
    roles: Mapping[str, str]
    date_format: str
    local_ids: tuple[str, ...] = ()
    sex_codes: tuple[str, ...] = field(default=())

    def schema(self, source: str) -> TableSchema:
        """The identifier file's schema: every column a direct identifier."""
        fields = [Field(self.record_key, "key", "direct_identifier", True)]
        for role, column in self.roles.items():
            if role == "date_of_birth":
                fields.append(
                    Field(
                        column,
                        "date",
                        "direct_identifier",
                        date_format=self.date_format,
                        not_in_future=True,
                    )
                )
            elif role == "sex" and self.sex_codes:
                fields.append(Field(column, "category", "direct_identifier", values=self.sex_codes))
            else:
                fields.append(Field(column, "text", "direct_identifier"))
        for column in self.local_ids:
            fields.append(Field(column, "text", "direct_identifier"))
        return TableSchema(f"{source}.identifiers", tuple(fields), unique_key=True)
