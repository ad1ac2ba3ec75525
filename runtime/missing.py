"""--on-missing: what becomes of a row of a table (CSV, Parquet) with a missing value (an empty cell, `NA`,
null or NaN) in a column that feeds the model or the metrics, and of a text cell in such a column."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from ..compiler.source import user_error
from .data import Batch, Located, nan_row_mask, not_a_number
from .defaults import ON_MISSING


def check_policy(policy: str) -> str:
    """`policy` if --on-missing knows it."""
    if policy not in ON_MISSING:
        raise user_error(f"--on-missing must be one of {', '.join(ON_MISSING)}, got '{policy}'")
    return policy


def _missing(values: np.ndarray, path: str, first_row: int, column: str) -> np.ndarray | None:
    """Rows whose cell is missing; a text cell that is not a number is an error, by row and value."""
    if values.dtype.kind == "f":
        return nan_row_mask(values)
    if values.dtype.kind != "O":
        return None
    missing = np.fromiter((v is None for v in values), bool, len(values))
    for i in np.flatnonzero(~missing):
        try:
            float(values[i])
        except (TypeError, ValueError):
            raise not_a_number(path, first_row + int(i), column, values[i]) from None
    return missing


def screen(located: Iterable[Located], columns: list[str], policy: str,
           on_skip: Callable[[int], None]) -> Iterator[Batch]:
    """The batches of `located`, each checked over `columns` by `policy`: an error at the first missing value,
    its rows left out (`on_skip(n)` told how many), or passed on. Arrays (.npz, .npy) pass as they are."""
    for source, first_row, batch in located:
        if not source.cells or not batch:
            yield batch
            continue
        rows = None
        for column in columns:
            bad = _missing(batch[column], source.path, first_row, column)
            if bad is None or not bad.any():
                continue
            if policy == "error":
                raise _missing_error(source.path, first_row, batch, columns)
            rows = bad if rows is None else rows | bad
        if rows is None or policy == "keep":
            yield batch
            continue
        on_skip(int(rows.sum()))
        yield {name: values[~rows] for name, values in batch.items()}


def _missing_error(path: str, first_row: int, batch: Batch, columns: list[str]) -> Exception:
    """The first row with a missing value, and its first such column in `columns` order."""
    marks = {c: _missing(batch[c], path, first_row, c) for c in columns}
    at = {c: np.flatnonzero(m) for c, m in marks.items() if m is not None}
    row = min(int(rows[0]) for rows in at.values() if len(rows))
    column = next(c for c in at if row in at[c])
    return user_error(f"{path} row {first_row + row + 1}, column '{column}': missing value; --on-missing skip "
                      "leaves such rows out, --on-missing keep passes them on as NaN")
