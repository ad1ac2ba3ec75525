"""Source positions and the one diagnostic type every stage reports with."""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Iterable

from .keras_names import keras_suggestion


MAX_ERRORS = 20  # diagnostics reported at most per file: the rest are most often consequences of these
# A diagnostic stays short whatever the file: a long line is quoted around the caret, a long message cut.
MAX_QUOTE = 200       # characters of the source line shown
MAX_MESSAGE = 1000    # characters of the message shown
MAX_SUGGESTED = 100   # a name longer than this gets no "did you mean"


@dataclass(frozen=True)
class Span:
    """A region of one source file, 1-based lines and columns, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    span: Span | None
    message: str
    severity: str = "error"
    source_line: str | None = None

    def render(self) -> str:
        where = f"{self.span}: " if self.span else ""
        message = self.message if len(self.message) <= MAX_MESSAGE else \
            f"{self.message[:MAX_MESSAGE]}… ({len(self.message) - MAX_MESSAGE:,} more characters)"
        text = f"{where}{self.severity}: {message}"
        if self.span and self.source_line is not None:
            line = self.source_line.rstrip("\r\n")
            end = self.span.end_col if self.span.end_line == self.span.line else len(line) + 1
            shown, col, end = _quote(line, self.span.col, min(end, len(line) + 1))
            width = max(1, end - col)
            # keep the line's tabs in the indent, so the caret lines up however wide a tab shows
            indent = "".join(c if c == "\t" else " " for c in shown[:col - 1])
            indent += " " * (col - 1 - len(indent))
            text += f"\n{shown}\n{indent}{'^' * width}"
        return text

    def __str__(self) -> str:
        return self.render()


def _quote(line: str, col: int, end: int) -> tuple[str, int, int]:
    """The line as quoted (MAX_QUOTE characters from a quarter before the caret, "…" where cut) and the
    span's columns in it."""
    first = max(0, min(col - 1 - MAX_QUOTE // 4, len(line) - MAX_QUOTE))
    cut_before = bool(line[:first].strip())  # a guarded line is blank but for its token: nothing cut to mark
    shown = ("…" if cut_before else " " if first else "") + line[first:first + MAX_QUOTE] \
        + ("…" if line[first + MAX_QUOTE:].strip() else "")
    shift = first - (first > 0)
    return shown, col - shift, min(end, first + MAX_QUOTE + 1) - shift


class ModelcError(Exception):
    """Base of every user-facing error: carries one or more diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic]):
        self.diagnostics = [diagnostics] if isinstance(diagnostics, Diagnostic) else list(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


class CheckError(ModelcError):
    """A name, type or shape error found before any ONNX is built."""


class SyntaxErrorDiag(ModelcError):
    """The parser rejected the text."""


class WeightsError(ModelcError):
    """Weights file does not match the model's parameters."""


def error(span: Span | None, message: str) -> CheckError:
    """The one helper every check raises through."""
    return CheckError(Diagnostic(span, message))


def user_error(message: str) -> ModelcError:
    """The one helper for what the user must fix that has no place in a source file (a path, data, an option)."""
    return ModelcError(Diagnostic(None, message))


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """The nearest candidate: Keras' word for one first (`BatchNormalization` -> `batch_norm`), then by
    spelling."""
    if len(name) > MAX_SUGGESTED:
        return ""
    known = set(candidates)
    if keras := keras_suggestion(name, known):
        return f"; did you mean '{keras}' (Keras' {name})?"
    # difflib's ratio is 2*matches/(len(a)+len(b)), so 0.6 needs the shorter within 3/7 of the longer's length
    known = {k for k in known if 3 * max(len(k), len(name)) <= 7 * min(len(k), len(name))}
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


QUOTED_AT_MOST = 40  # characters of a guarded file's line shown under a diagnostic


def _token_only(line: str, span: Span) -> str:
    """What a diagnostic may show of a file that is not a program (`import "/etc/passwd"`): the characters
    under its caret, no more than QUOTED_AT_MOST, in place, the rest blanked."""
    start = span.col - 1
    end = span.end_col - 1 if span.end_line == span.line else len(line)
    return " " * start + line[start:min(end, start + QUOTED_AT_MOST)]


@dataclass
class SourceFiles:
    """Text of every file read, so diagnostics can show the offending line."""

    texts: dict[str, str] = field(default_factory=dict)
    lines: dict[str, list[str]] = field(default_factory=dict, repr=False)   # each text split once
    guarded: set[str] = field(default_factory=set)   # imported files that are no .model: quoted a token at most

    def line(self, span: Span | None) -> str | None:
        if span is None:
            return None
        if span.file not in self.texts:  # a file loaded elsewhere (an --import, the metric prelude)
            if not os.path.isfile(span.file):   # read once already; never a FIFO or a device now
                return None
            try:
                with open(span.file, encoding="utf-8") as f:
                    self.texts[span.file] = f.read()
            except (OSError, UnicodeDecodeError):
                return None
        if span.file not in self.lines:
            self.lines[span.file] = self.texts[span.file].split("\n")  # as the lexer counts: \f or \u2028 end none
        lines = self.lines[span.file]
        line = lines[span.line - 1].rstrip("\r") if 0 < span.line <= len(lines) else None
        return _token_only(line, span) if line is not None and span.file in self.guarded else line

    def attach(self, diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
        out = []
        for d in diagnostics:
            if d.source_line is None:
                d.source_line = self.line(d.span)
            out.append(d)
        return out
