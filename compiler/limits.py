"""The front end's bounds on what one input may cost, so that a hostile or broken file gets a clear error
instead of exhausting memory or time: a source file's size and tokens, and a model's weights. Each has a
generous default, an environment variable that overrides it, and (the weights) an option and a keyword
too; docs/language.md §17.1 lists them. Reading a source file refuses anything but a regular file."""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from .source import user_error

# Decimal and binary units, as `--max-weights-size 64GB` or `MODELC_MAX_SOURCE_SIZE=32MiB` write them.
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
              "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
FILE_KINDS = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def parse_size(text: str) -> int:
    """`64GB`, `1.5GiB`, `512 MB`, `1000000` (bytes) -> bytes. Raises ValueError."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in SIZE_UNITS:
        raise ValueError(f"'{text}' is not a size; write, say, 64GB, 512MiB or 1000000 (bytes)")
    return int(float(m.group(1)) * SIZE_UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    """Bytes in decimal units: `16 MB`, `1.6 TB`."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Limit:
    env: str        # the environment variable that overrides the default
    default: int
    unit: str       # "bytes" (written as a size) or what is counted
    option: str = ""   # the command-line option that overrides both, if any

    def value(self, given: int | str | None = None) -> int:
        """`given` (an option or keyword), else the environment variable, else the default."""
        text = given if given is not None else os.environ.get(self.env) or None
        if text is None:
            return self.default
        if isinstance(text, int) and not isinstance(text, bool):
            return text
        try:
            return parse_size(text) if self.unit == "bytes" else int(text)
        except ValueError as e:
            where = self.env if given is None else (self.option.lstrip("-").replace("-", "_") or "the limit")
            raise user_error(f"{where}: {e}") from None

    def describe(self, value: int, what: str) -> str:
        """`the 16 MB limit on a source file (raise it with MODELC_MAX_SOURCE_SIZE)`"""
        shown = format_size(value) if self.unit == "bytes" else f"{value:,}-{self.unit.rstrip('s')}"
        return f"the {shown} limit on {what} (raise it with {self.option + ' or ' if self.option else ''}{self.env})"


SOURCE_SIZE = Limit("MODELC_MAX_SOURCE_SIZE", 16 * 10**6, "bytes")
# A token costs about 700 bytes while the tree and the AST are built; the prelude has 1,247 tokens.
TOKENS = Limit("MODELC_MAX_TOKENS", 200_000, "tokens")
# What `compile` holds in memory at once: `check` refuses a model whose weights would not fit.
# A name or string longer than a path may be is no program's: a 16 MB instance name took 5 GB in node names.
MAX_TOKEN_LENGTH = 4096
WEIGHTS_SIZE = Limit("MODELC_MAX_WEIGHTS_SIZE", 16 * 10**9, "bytes", "--max-weights-size")


class SourceRefused(ValueError):
    """A source file that is not read: what it is instead (`a FIFO (named pipe), not a regular file`)."""


def read_source(path: str) -> str:
    """The text of a source file. Opened without blocking (a FIFO never hangs) and checked with fstat before a
    byte is read: anything but a regular file, or a file over SOURCE_SIZE, raises SourceRefused. OSError and
    UnicodeDecodeError pass through."""
    limit = SOURCE_SIZE.value()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        kind = next((name for test, name in FILE_KINDS if test(info.st_mode)), None)
        if kind is not None or not stat.S_ISREG(info.st_mode):
            raise SourceRefused(f"{kind or 'not a file'}, not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        data = f.read(limit + 1)   # never more than the file holds; +1 tells a file over the limit
    if len(data) > limit:
        raise SourceRefused(f"{format_size(max(info.st_size, len(data)))}, over "
                            f"{SOURCE_SIZE.describe(limit, 'a source file')}")
    return data.decode("utf-8")
