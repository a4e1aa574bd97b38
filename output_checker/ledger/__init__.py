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
    stack,
    table_aggregates,
)
from output_checker.ledger.differencing import (
    DifferencingFinding,
    IndexedRows,
    differencing_findings,
    index_rows,
)

__all__ = [
    "COUNT",
    "Aggregates",
    "CellGrid",
    "CellRef",
    "DifferencingFinding",
    "IndexedRows",
    "Kind",
    "Quantity",
    "TableDefinition",
    "differencing_findings",
    "index_rows",
    "stack",
    "table_aggregates",
]
