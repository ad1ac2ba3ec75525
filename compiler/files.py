"""Writing what a user keeps: every output file goes through `atomic_write`, so a failed or interrupted
write never leaves half a file where a good one was, and an unwritable path is a user error.

The rules (docs/outputs.md):
- a destination that exists and is not a regular file (a folder, a device, a FIFO, a socket) is refused;
- a symlinked destination is written through: its target is replaced, the link stays;
- the temporary file lives beside the (real) destination, is flushed to disk (fsync) before the rename,
  and is removed on any exception, KeyboardInterrupt or SIGTERM (the command line turns SIGTERM into an
  exception); what a killed process (SIGKILL, power loss) left behind is removed by the next write to that
  folder, once its process is gone;
- every error names the user's path, never the temporary one.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from .source import user_error

# A temporary file `.NAME.modelc-PID.tmp`, a scratch folder `.modelc-KIND-PID-XXXX`; the old `.NAME.tmpPID` of
# earlier versions is matched only for the destination being written (the name is too common to sweep).
_TEMP = re.compile(r"\A\..+\.modelc-(\d{1,9})\.tmp\Z|\A\.modelc-[a-z]+-(\d{1,9})-", re.S)
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
_swept: set[tuple[str, str | None]] = set()   # (folder, file name) already swept by this process


def regular_input(path: str | os.PathLike, what: str = "") -> None:
    """Refuse an input that is not a regular file (a FIFO would block the read forever, a device never end):
    checked with stat, which opens nothing; a missing file is left to the reader's own message."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise user_error(f"cannot read {what + ' ' if what else ''}{path}: it is {kind}, not a regular file")


def _clear(tmp: Path) -> None:
    """Something planted at a temporary's predictable name (a link, a FIFO) is removed, never followed:
    unlink takes the link itself, not its target."""
    if os.path.lexists(tmp):
        os.unlink(tmp)


def temporary_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.modelc-{os.getpid()}.tmp")


@contextmanager
def atomic_write(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Yield one temporary path beside each of `paths`; when the block succeeds they are flushed to disk and
    renamed over them (the last path last, so a model file appears only once its external data is in place);
    on failure the temporaries are removed and the old files are left as they were.

        with atomic_write("predictions.csv") as (tmp,):
            write_csv(tmp)      # an exception here leaves any old predictions.csv untouched
    """
    finals = [destination(p) for p in paths]
    temps = [temporary_name(p) for p in finals]
    with reporting_write_errors(paths[-1]), ExitStack() as cleanup:
        for tmp in temps:
            _clear(tmp)
            cleanup.callback(tmp.unlink, missing_ok=True)
        yield temps
        for tmp, final in zip(temps, finals):
            if tmp.exists():
                _keep_mode(final, tmp)
                _fsync(tmp)
                os.replace(tmp, final)
        for folder in dict.fromkeys(final.parent for final in finals):
            _fsync(folder, folder=True)


def destination(path: str | os.PathLike) -> Path:
    """Where a write to `path` lands: a symlink's target (written through), never anything but a regular file.
    Stale temporaries of dead processes beside it are removed first."""
    final = Path(os.path.realpath(path))
    try:
        mode = os.stat(final).st_mode
    except OSError:   # not there yet (or unreadable: the write itself will say why)
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a regular file")
        link = f" (a link to {final})" if os.path.islink(path) else ""
        raise user_error(f"cannot write {path}: it is {kind}{link}; modelc writes only regular files, "
                         "give a file path")
    sweep_stale(final.parent, final.name)
    return final


def check_writable(path: str | os.PathLike, inputs: tuple = ()) -> None:
    """Refuse now what `atomic_write(path)` would refuse later (a non-regular file, a missing or read-only
    folder): an evaluation must not run for an hour to fail at its first checkpoint. Nor may an output be one
    of the command's `inputs` (`compile m.model -o m.model` would replace the source)."""
    final = destination(path)
    for given in inputs:
        if given is not None and os.path.exists(given) and os.path.realpath(given) == os.path.realpath(final):
            raise user_error(f"cannot write {path}: it is also an input of this command ({given}); writing it "
                             "would destroy it")
    if not final.parent.is_dir():
        raise user_error(f"cannot write {path}: no folder {final.parent}")
    with reporting_write_errors(path):
        probe = temporary_name(final)
        _clear(probe)
        with open(probe, "xb"):
            pass
        probe.unlink()


@contextmanager
def scratch_folder(folder: str | os.PathLike | None, kind: str) -> Iterator[str]:
    """A private folder for the parts of an output (`.modelc-KIND-PID-XXXX` in `folder`, or the temporary
    folder), removed when the block ends however it ends; stale ones of dead processes are removed first."""
    if folder is not None:
        sweep_stale(Path(folder))
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".modelc-{kind}-{os.getpid()}-") as scratch:
        yield scratch


def sweep_stale(folder: Path, name: str | None = None) -> None:
    """Remove the temporaries and scratch folders that a process now dead left in `folder` (ours only: same
    user, and a process id that no longer runs); with `name`, also the old-style `.NAME.tmpPID` of that file."""
    if (str(folder), name) in _swept:
        return
    _swept.add((str(folder), name))
    legacy = re.compile(rf"\A\.{re.escape(name)}\.tmp(\d{{1,9}})\Z") if name else None
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        m = _TEMP.match(entry.name) or (legacy.match(entry.name) if legacy else None)
        pid = next((int(g) for g in m.groups() if g), None) if m else None
        if pid is None or _alive(pid):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():  # posix only: _alive said so
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # (Windows' os.kill(pid, 0) would send Ctrl-C: never swept there)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # EPERM: someone else's process, alive
        return True
    return True


def _keep_mode(final: Path, tmp: Path) -> None:
    """A file replaced keeps its permissions (a private checkpoint stays private)."""
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(final).st_mode))
    except FileNotFoundError:
        pass


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush a file's data (or a folder's entries) to disk before it counts as written; a folder on a file
    system that cannot sync folders is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


@contextmanager
def reporting_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """An unwritable output is the user's to fix: say which path, not which temporary file."""
    try:
        yield
    except IsADirectoryError:
        raise user_error(f"cannot write {path}: it is a folder") from None
    except OSError as e:
        raise user_error(f"cannot write {path}: {e.strerror or e}") from None
