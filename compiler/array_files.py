""".npy headers and .npz members read without trusting them: every size, shape and dtype is checked
against what the file really holds before any payload is read, and payloads are read in the pieces asked for.

A 4 MB .npz may inflate to 4 GiB, or its header may claim a shape its bytes do not have: both are caught
from the headers and the zip directory, so a hostile file costs nothing before its names and shapes are known.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from .files import regular_input
from .source import user_error

# what a broken or hostile zip raises from zipfile: truncated, bad CRC, corrupt deflate stream, encrypted,
# an unknown compression method
ZIP_ERRORS = (OSError, ValueError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class ArrayHeader:
    """What a .npy header says of its array, checked: C order (or 1-D), no objects, no negative sizes."""

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int             # bytes before the payload (magic and header)

    @property
    def nbytes(self) -> int:
        """The payload's size in bytes, in Python integers (no overflow, however large the header's shape)."""
        size = self.dtype.itemsize
        for d in self.shape:
            size *= d
        return size

    @property
    def row_bytes(self) -> int:
        return self.nbytes // self.shape[0] if self.shape and self.shape[0] else 0


def read_header(f: BinaryIO, what: str) -> ArrayHeader:
    """The header of a .npy stream at its start; `what` names the array in errors ("data.npz: array 'x'")."""
    try:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
    except (ValueError, EOFError) as e:
        raise user_error(f"{what} is not a valid .npy array: {e}") from None
    if dtype.hasobject:
        raise user_error(f"{what} holds Python objects; pickled data is not read")
    if any(d < 0 for d in shape):
        raise user_error(f"{what} has a negative size in its header: shape {list(shape)}")
    if fortran and len(shape) > 1:
        raise user_error(f"{what} is Fortran-ordered; save it C-ordered")
    return ArrayHeader(dtype, tuple(shape), f.tell())


def fill(f: BinaryIO, array: np.ndarray, what: str) -> np.ndarray:
    """`array` filled with the next bytes of `f` (one copy). One read returns at most about 2 GB on Linux:
    read until the array is full; a stream that ends first is a truncated file."""
    view, done = memoryview(array).cast("B"), 0
    while done < array.nbytes:
        got = f.readinto(view[done:])
        if not got:
            raise user_error(f"{what} ends before its last row: the file is truncated")
        done += got
    return array


def check_size(header: ArrayHeader, stored: int, what: str) -> None:
    """The payload the header announces is exactly what the file holds (`stored` bytes in all)."""
    if header.offset + header.nbytes != stored:
        raise user_error(f"{what} holds {stored - header.offset} bytes of data, its header says "
                         f"{header.dtype.name} {list(header.shape)} ({header.nbytes} bytes): the file is truncated "
                         "or its header is wrong")


class NpzArchive:
    """The arrays of an .npz by name, from the zip directory and each member's header alone: each member's
    size is checked against its header (a member shorter or longer than its header says is refused), an
    encrypted member is refused, and no payload is read until `open` or `read` asks for it."""

    def __init__(self, path: str):
        self.path = path
        regular_input(path)
        try:
            self.zip = zipfile.ZipFile(path)
            self.headers = {info.filename[:-4]: self._header(info) for info in self.zip.infolist()
                            if info.filename.endswith(".npy")}
        except ZIP_ERRORS as e:
            raise user_error(f"cannot read {path}: {e}") from None

    def _header(self, info: zipfile.ZipInfo) -> ArrayHeader:
        what = f"{self.path}: array '{info.filename[:-4]}'"
        if info.flag_bits & 0x1:
            raise user_error(f"{what} is encrypted; modelc reads unencrypted .npz files only")
        with self.zip.open(info) as f:
            header = read_header(f, what)
        check_size(header, info.file_size, what)
        return header

    def open(self, name: str, start_row: int = 0) -> BinaryIO:
        """Array `name`'s payload as a stream (zipfile checks the CRC at its end), positioned at `start_row`."""
        try:
            f = self.zip.open(name + ".npy")
            f.seek(self.headers[name].offset + start_row * self.headers[name].row_bytes)
        except ZIP_ERRORS as e:
            raise user_error(f"cannot read {self.path}: array '{name}': {e}") from None
        return f

    def read(self, name: str) -> np.ndarray:
        """The whole array `name`, its CRC checked."""
        header = self.headers[name]
        with self.open(name) as f:
            array = read_rows(f, header, header.shape[0] if header.shape else 1, f"{self.path}: array '{name}'")
            finish(f, f"{self.path}: array '{name}'")
        return array.reshape(header.shape)

    def close(self) -> None:
        self.zip.close()


def read_rows(f: BinaryIO, header: ArrayHeader, rows: int, what: str) -> np.ndarray:
    """The next `rows` rows of the array `header` describes (for a scalar, its one value), as zip errors
    (a bad CRC, a corrupt stream) in the user's words."""
    try:
        return fill(f, np.empty((rows, *header.shape[1:]), header.dtype), what)
    except ZIP_ERRORS as e:
        raise user_error(f"cannot read {what}: {e}") from None


def finish(f: Any, what: str) -> None:
    """Read to the member's end, so zipfile checks its CRC; bytes past the payload are an error."""
    try:
        extra = f.read(1)
    except ZIP_ERRORS as e:
        raise user_error(f"cannot read {what}: {e}") from None
    if extra:
        raise user_error(f"{what} has bytes past the end its header gives")
