"""The ledger's files: each output's published cells as one compressed ``.npz`` in a
content-addressed store (``<data_dir>/ledger``, the snapshot store's rules: written once through
a rename, re-hashed when read, so an altered file is refused rather than trusted). Which
files make up a project's ledger is the database's ``LedgerEntry`` rows.

Every audit reads the project's whole ledger, so each process keeps the decoded arrays of the
files it has verified (bounded, least recently used first out). That is safe because a file's
name is the hash of its content: a copy that matched the name once is the file's content for
good, and a file altered after it was cached is served as it was verified. A file that fails
its hash is never cached. Callers get their own copies of the arrays.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from output_checker.ledger import Aggregates, CellGrid, Kind, Quantity
from output_checker.queue.ledger_cells import OutputCells
from output_checker.queue.storage import BlobStore

CACHE_ENTRIES = 256
CACHE_BYTES = 256 * 1024 * 1024


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
        "weights": quantity.weights,
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


@dataclass(frozen=True)
class _Decoded:
    """A ledger file's content as read, before it becomes one output's cells."""

    meta: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in self.arrays.values())


def _read(content: bytes) -> _Decoded:
    with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
        meta = json.loads(str(arrays["meta"]))
        return _Decoded(meta, {name: arrays[name] for name in arrays.files if name != "meta"})


def _cells(decoded: _Decoded, output: str) -> OutputCells:
    meta, arrays = decoded.meta, decoded.arrays
    keys = arrays["keys"]
    quantity = Quantity(Kind(meta["kind"]), meta["measure"], meta.get("weights"))
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


def decode(content: bytes, output: str) -> OutputCells:
    """Cells from :func:`encode`'s bytes, published in ``output``."""
    return _cells(_read(content), output)


class _Cache:
    """Verified ledger files, decoded, by (store root, digest); the least recently used go
    first once there are more than ``entries`` or their arrays exceed ``nbytes``."""

    def __init__(self, entries: int, nbytes: int) -> None:
        self.entries, self.nbytes = entries, nbytes
        self._held: OrderedDict[tuple[str, str], _Decoded] = OrderedDict()
        self._lock = threading.Lock()  # the web server's threads share it

    def get(self, key: tuple[str, str]) -> _Decoded | None:
        with self._lock:
            found = self._held.get(key)
            if found is not None:
                self._held.move_to_end(key)
            return found

    def put(self, key: tuple[str, str], decoded: _Decoded) -> None:
        if decoded.nbytes > self.nbytes:
            return
        for array in decoded.arrays.values():
            array.setflags(write=False)  # the cached copy is only ever copied from
        with self._lock:
            self._held[key] = decoded
            self._held.move_to_end(key)
            while len(self._held) > self.entries or self._size() > self.nbytes:
                self._held.popitem(last=False)

    def _size(self) -> int:
        return sum(decoded.nbytes for decoded in self._held.values())

    def clear(self) -> None:
        with self._lock:
            self._held.clear()


_CACHE = _Cache(CACHE_ENTRIES, CACHE_BYTES)


def store(data_dir: Path) -> BlobStore:
    """Where ledger files live: a content-addressed store of its own (``<data_dir>/ledger``)."""
    return BlobStore(Path(data_dir) / "ledger")


def save(data_dir: Path, cells: OutputCells) -> str:
    """Store the cells; returns their sha256."""
    return store(data_dir).put(encode(cells)).sha256


def load(data_dir: Path, digest: str, output: str) -> OutputCells:
    """The stored cells ``digest``, published in ``output``; NotFound or IntegrityFailure if
    the file is missing or does not have that hash when first read in this process."""
    files = store(data_dir)
    key = (str(files.root), digest)
    decoded = _CACHE.get(key)
    if decoded is None:
        decoded = _read(files.read(digest))  # raises before anything is cached
        _CACHE.put(key, decoded)
    # Copies: the audit may reorder a matrix's arrays in place (``sort_indices``).
    mine = _Decoded(decoded.meta, {name: array.copy() for name, array in decoded.arrays.items()})
    return _cells(mine, output)


def clear_cache() -> None:
    """Forget every cached ledger file (tests)."""
    _CACHE.clear()
