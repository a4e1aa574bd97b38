"""The cross-output differencing ledger (spec §11): every released cell as a linear aggregate
over the project's entities, and checks of a new output against all of them. Pure: no I/O;
the caller maps pseudonymous ids to column indices and stores the ledger."""

from output_checker.ledger.aggregates import (
    COUNT,
    Aggregates,
    CellGrid,
    CellRef,
    Kind,
    Quantity,
    TableDefinition,
    percentage_aggregates,
    stack,
    table_aggregates,
    weighted_count,
)
from output_checker.ledger.differencing import (
    DifferencingFinding,
    IndexedRows,
    differencing_findings,
    index_rows,
)
from output_checker.ledger.lp_audit import (
    Interval,
    LPFinding,
    attacker_interval,
    components,
    lp_findings,
    merge_atoms,
)
from output_checker.ledger.mitigations import (
    Cost,
    LevelMerge,
    Microdata,
    Mitigation,
    MitigationKind,
    SuppressedCell,
    mitigations,
)
from output_checker.ledger.ratios import resolve_ratios

__all__ = [
    "COUNT",
    "Aggregates",
    "CellGrid",
    "CellRef",
    "Cost",
    "DifferencingFinding",
    "IndexedRows",
    "Interval",
    "Kind",
    "LPFinding",
    "LevelMerge",
    "Microdata",
    "Mitigation",
    "MitigationKind",
    "Quantity",
    "SuppressedCell",
    "TableDefinition",
    "attacker_interval",
    "components",
    "differencing_findings",
    "index_rows",
    "lp_findings",
    "merge_atoms",
    "mitigations",
    "percentage_aggregates",
    "resolve_ratios",
    "stack",
    "table_aggregates",
    "weighted_count",
]
