"""Writing what a user keeps: every output file goes through `atomic_write`, so a failed or interrupted
write never leaves half a file where a good one was, and an unwritable path is a user error."""
from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from .source import user_error


@contextmanager
def atomic_write(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path beside each of `paths`; when the block succeeds they are renamed over them
    (the last path last, so a model file appears only once its external data is in place); on failure
    the temporaries are removed and the old files are left as they were.

        with atomic_write("predictions.csv") as (tmp,):
            write_csv(tmp)      # an exception here leaves any old predictions.csv untouched
    """
    finals = [Path(p) for p in paths]
    temps = [p.with_name(f".{p.name}.tmp{os.getpid()}") for p in finals]
    with reporting_write_errors(finals[-1]), ExitStack() as cleanup:
        for tmp in temps:
            cleanup.callback(tmp.unlink, missing_ok=True)
        yield temps
        for tmp, final in zip(temps, finals):
            if tmp.exists():
                os.replace(tmp, final)


@contextmanager
def reporting_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """An unwritable output is the user's to fix: say which path, not which temporary file."""
    try:
        yield
    except IsADirectoryError:
        raise user_error(f"cannot write {path}: it is a folder") from None
    except OSError as e:
        raise user_error(f"cannot write {path}: {e.strerror or e}") from None
