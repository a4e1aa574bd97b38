"""The ledger's files: each output's published cells as one compressed ``.npz`` in a
content-addressed store (``<data_dir>/ledger``, the snapshot store's rules: written once through
a rename, re-hashed on every read, so an altered file is refused rather than trusted). Which
files make up a project's ledger is the database's ``LedgerEntry`` rows.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from scipy import sparse

from output_checker.ledger import Aggregates, CellGrid, Kind, Quantity
from output_checker.queue.ledger_cells import OutputCells
from output_checker.queue.storage import BlobStore


def encode(cells: OutputCells) -> bytes:
    """The cells as ``.npz`` bytes (one grid and one quantity per output)."""
    aggregates = cells.aggregates
    (grid,) = aggregates.grids
    (quantity,) = aggregates.quantities
    meta = {
        "variables": list(grid.variables),
        "levels": [list(levels) for levels in grid.levels],
        "kind": quantity.kind.value,
        "measure": quantity.measure,
        "base": cells.base,
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        meta=np.asarray(json.dumps(meta)),
        indptr=aggregates.weights.indptr,
        indices=aggregates.weights.indices,
        data=aggregates.weights.data,
        cell_of=aggregates.cell_of,
        codes=grid.codes,
        keys=cells.keys,
        hidden=cells.hidden,
        protection=cells.protection,
    )
    return buffer.getvalue()


def decode(content: bytes, output: str) -> OutputCells:
    """Cells from :func:`encode`'s bytes, published in ``output``."""
    with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"]))
        keys = arrays["keys"]
        quantity = Quantity(Kind(meta["kind"]), meta["measure"])
        rows = arrays["cell_of"].shape[0]
        grid = CellGrid(
            output=output,
            variables=tuple(meta["variables"]),
            levels=tuple(tuple(levels) for levels in meta["levels"]),
            codes=arrays["codes"],
        )
        weights = sparse.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(rows, keys.shape[0])
        )
        return OutputCells(
            aggregates=Aggregates(
                weights=weights,
                grids=(grid,),
                grid_of=np.zeros(rows, dtype=np.int64),
                cell_of=arrays["cell_of"],
                quantities=(quantity,),
                quantity_of=np.zeros(rows, dtype=np.int64),
            ),
            keys=keys,
            hidden=arrays["hidden"],
            protection=arrays["protection"],
            base=int(meta.get("base", 0)),
        )


def store(data_dir: Path) -> BlobStore:
    """Where ledger files live: a content-addressed store of its own (``<data_dir>/ledger``)."""
    return BlobStore(Path(data_dir) / "ledger")


def save(data_dir: Path, cells: OutputCells) -> str:
    """Store the cells; returns their sha256."""
    return store(data_dir).put(encode(cells)).sha256


def load(data_dir: Path, digest: str, output: str) -> OutputCells:
    """The stored cells ``digest``, published in ``output``; NotFound or IntegrityFailure if
    the file is missing or no longer has that hash."""
    return decode(store(data_dir).read(digest), output)
