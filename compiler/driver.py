"""The pipeline as functions: load (parse + imports + check) -> lower -> emit -> save."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..version import __version__
from . import ir
from . import nodes as N
from .check import check_definitions
from .limits import SourceRefused, read_source
from .imports import import_target, refused_import
from .lower import Lowerer, source_hash
from .parse import parse_text
from .source import MAX_ERRORS, CheckError, Diagnostic, ModelcError, SourceFiles, did_you_mean, user_error
from .types import FLOAT_DTYPES

if TYPE_CHECKING:
    import onnx



@dataclass
class LoadedProgram:
    """Every definition reachable from one file, checked, with the texts for diagnostics."""

    root: str
    files: SourceFiles = field(default_factory=SourceFiles)
    definitions: dict[str, N.Definition] = field(default_factory=dict)
    order: list[N.Definition] = field(default_factory=list)
    max_weights: int | str | None = None   # its models' weights budget (--max-weights-size); None: the default

    @property
    def models(self) -> list[N.Definition]:
        return [d for d in self.order if d.kind == "model" and d.loc.file == self.root]

    def hash(self) -> str:
        return source_hash("\0".join(f"{k}\0{v}" for k, v in sorted(self.files.texts.items())))


# Lowering recurses once per nested layer (about 8 frames each); CPython 3.11 runs Python-to-Python
# calls without growing the C stack, so a deeper limit is safe and lets long chains of layers compile.
RECURSION_LIMIT = 20_000


def load_source(text: str, file: str = "<string>") -> LoadedProgram:
    """Parse a file and its imports, and check every definition in them (metric bodies included).

    Raises ModelcError with every diagnostic: no file is loaded unchecked."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    program = LoadedProgram(file)
    _load(program, file, text, [])
    diagnostics = check_definitions(program.definitions, program.order)
    if diagnostics:
        raise CheckError(_in_order(program, diagnostics))
    return program


def load_file(path: str | os.PathLike) -> LoadedProgram:
    """`load_source` of a file: the model file, an --import, a metric file."""
    path = str(path)
    try:
        text = read_source(path)
    except SourceRefused as e:
        raise user_error(f"cannot read {path}: it is {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise user_error(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    return load_source(text, path)


def _load(program: LoadedProgram, file: str, text: str, stack: list[str]) -> None:
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors on Windows write
    program.files.texts[file] = text
    try:
        tree = parse_text(text, file)
    except ModelcError as e:
        raise ModelcError(program.files.attach(e.diagnostics)) from None
    for imp in tree.imports:
        target = import_target(file, imp.path)
        if refused := refused_import(target, imp.loc, imp.path):
            raise ModelcError(program.files.attach([refused]))
        if target in stack or target == os.path.normpath(file):
            chain = " -> ".join([*stack, os.path.normpath(file), target])
            raise ModelcError(program.files.attach([Diagnostic(imp.loc, f"import cycle: {chain}")]))
        if target not in program.files.texts:
            _load(program, target, _read_import(program, imp, target), [*stack, os.path.normpath(file)])
    duplicates = []
    for d in tree.definitions:
        if d.name in program.definitions:
            first = program.definitions[d.name].loc
            duplicates.append(Diagnostic(d.name_loc, f"'{d.name}' is already defined at {first}"))
            continue
        program.definitions[d.name] = d
        program.order.append(d)
    if duplicates:
        raise ModelcError(program.files.attach(duplicates))


def _read_import(program: LoadedProgram, imp: N.Import, target: str) -> str:
    if not target.endswith(".model"):  # not a program: a diagnostic in it quotes its token, not its lines
        program.files.guarded.add(target)
    try:
        return read_source(target)
    except (OSError, UnicodeDecodeError, SourceRefused) as e:
        why = (f"{target} is a folder, not a .model file" if Path(target).is_dir()
               else f"{target} is {e}" if isinstance(e, SourceRefused)
               else f"{target} is not UTF-8 text" if isinstance(e, UnicodeDecodeError)
               else f"no such file {target}" if isinstance(e, FileNotFoundError)
               else f"{target}: {e.strerror or e}")
        raise ModelcError(program.files.attach([Diagnostic(imp.loc, f"cannot import '{imp.path}': {why}")])) \
            from None


def _in_order(program: LoadedProgram, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    diagnostics.sort(key=lambda d: (d.span.file, d.span.line, d.span.col) if d.span else ("", 0, 0))
    return program.files.attach(diagnostics[:MAX_ERRORS])


def check_shapes(program: LoadedProgram, models: list[N.Definition] | None = None,
                  lowered: dict[str, ir.Model] | None = None) -> list[Diagnostic]:
    """Every diagnostic of the shapes of each model (of `models`, by default all); the names were checked
    when the program loaded. A model that lowers cleanly is kept in `lowered`, so compiling needs no second pass."""
    diagnostics: list[Diagnostic] = []
    for model in program.models if models is None else models:
        try:
            result = Lowerer(program.definitions, max_weights=program.max_weights).lower_model(model)
            if lowered is not None:
                lowered[model.name] = result
        except CheckError as e:
            diagnostics.extend(e.diagnostics)
        if len(diagnostics) >= MAX_ERRORS:
            break
    return _in_order(program, diagnostics)


def select_model(program: LoadedProgram, name: str | None) -> N.Definition:
    models = program.models
    if name is not None:
        for m in models:
            if m.name == name:
                return m
        names = [m.name for m in models]
        raise user_error(f"no model named '{name}' in {program.root}; models: "
                         f"{', '.join(names) or 'none'}{did_you_mean(name, names)}")
    if len(models) != 1:
        which = ", ".join(m.name for m in models)
        raise user_error(f"{program.root} holds {len(models)} models{' (' + which + ')' if which else ''}; "
                         "pick one with --model NAME" if models else f"{program.root} defines no model")
    return models[0]


def lower_program(program: LoadedProgram, model: str | None = None, dtype: str | None = None,
                  opset: int | None = None, keep32: frozenset[str] = frozenset()) -> ir.Model:
    """The checked, lowered model: names checked in the whole program, shapes in the model compiled
    (`keep32`: the weights a float16 compile keeps in float32, see float16_islands)."""
    d = select_model(program, model) if program.models or model else None
    if dtype is not None and dtype not in FLOAT_DTYPES:
        raise user_error(f"--dtype must be {', '.join(FLOAT_DTYPES[:-1])} or {FLOAT_DTYPES[-1]}, got {dtype}")
    kept: dict[str, ir.Model] = {}
    diagnostics = check_shapes(program, [d] if d is not None and dtype is None and opset is None else [], kept)
    if diagnostics:
        raise CheckError(diagnostics)
    if d is None:
        d = select_model(program, model)  # reports "defines no model"
    try:
        lowered = kept[d.name] if d.name in kept else \
            Lowerer(program.definitions, dtype, opset, keep32, program.max_weights).lower_model(d)
    except CheckError as e:
        raise CheckError(program.files.attach(e.diagnostics)) from None
    lowered.source_hash = program.hash()
    return lowered


@dataclass
class Compiled:
    """A checked model whose weights are still numpy arrays: saved straight from them (serialize.py),
    or attached to the ModelProto for the Python API."""

    proto: "onnx.ModelProto"          # weights declared as typed graph inputs
    slots: list[ir.WeightSlot]
    arrays: dict[str, Any]
    initialized: list[str] = field(default_factory=list)   # weights drawn from the seed: no file gave them

    def with_weights(self) -> "onnx.ModelProto":
        from .emit import attach_weights
        attach_weights(self.proto, self.slots, self.arrays)
        self.slots, self.arrays = [], {}
        return self.proto

    def save(self, path: str | os.PathLike) -> None:
        from .serialize import write_model
        write_model(path, self.proto, self.slots, self.arrays)


def compile_for_saving(program: LoadedProgram, model: str | None = None, weights: str | None = None,
                       seed: int = 0, opset: int | None = None, inline: bool = False,
                       init_missing: bool = False, dtype: str | None = None,
                       layer_outputs: bool = False, require_weights: bool = False,
                       strict_float16: bool = False) -> Compiled:
    """Compile one model, its weights kept as arrays (`modelc compile` writes the file straight from them).
    `dtype` recasts float32 inputs, weights and computation (compile --dtype); `layer_outputs` adds every
    top-level layer's output as a graph output (compare --layers); `require_weights` refuses random weights
    unless `init_missing` (run, eval, compare: see weights.bind_weights)."""
    import onnx

    from .emit import DEFAULT_OPSET, MIN_OPSET, emit_model
    from .weights import bind_weights
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise user_error(f"--opset must be between {MIN_OPSET} and {newest}, got {opset}")
    lowered = lower_program(program, model, dtype, None if opset == DEFAULT_OPSET else opset)
    try:
        arrays, initialized = bind_weights(lowered.graph.weights, weights, seed, init_missing,
                                           cast=dtype is not None, require=require_weights)
    except ModelcError as e:
        raise type(e)(program.files.attach(e.diagnostics)) from None
    if dtype == "float16":
        lowered = float16_islands(program, lowered, arrays, model, None if opset == DEFAULT_OPSET else opset,
                                  strict_float16)
    meta = {"modelc.version": __version__, "modelc.source_sha256": lowered.source_hash,
            "modelc.source": os.path.basename(program.root), "modelc.seed": str(seed)}
    if dtype:
        meta["modelc.dtype"] = dtype
    # an identity layer (dropout) holds its input's value: listed once, not once per layer
    extra = list({r.value: ir.Value(r.value, r.output) for r in lowered.layers
                  if layer_outputs and r.value and r.output}.values())
    # The checker reads the graph with the weights as typed inputs: the same nodes, types and shapes
    # without serializing gigabytes of weights twice. Their bytes are then attached in place.
    proto = emit_model(lowered, None, opset=opset, inline=inline, metadata=meta, extra_outputs=extra)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise user_error(f"internal error: emitted ONNX fails the checker: {e}") from e
    return Compiled(proto, lowered.graph.weights, arrays, initialized)


def float16_islands(program: LoadedProgram, lowered: ir.Model, arrays: dict[str, Any], model: str | None,
                    opset: int | None, strict: bool) -> ir.Model:
    """Name every weight and constant float16 cannot hold (a warning each; an overflow is an error under
    --strict-float16). They stay float32 and the ops reading them run in float32 between Casts
    (builder.py): bind_weights kept those weights float32, so the model is lowered again knowing them."""
    import warnings

    from .types import float16_misfit, numpy_dtype
    kept = frozenset(s.name for s in lowered.graph.weights if arrays[s.name].dtype != numpy_dtype(s.type.dtype))
    if kept:
        lowered = lower_program(program, model, "float16", opset, kept)
    misfits = [*lowered.misfits, *((f"weight '{n}'", str(float16_misfit(arrays[n]))) for n in sorted(kept))]
    overflows = [f"{what} {why}" for what, why in misfits if why.startswith("overflows")]
    if strict and overflows:
        raise ModelcError([Diagnostic(None, f"{o}: --strict-float16 refuses to keep it in float32")
                           for o in overflows])
    for what, why in misfits:
        warnings.warn(f"{what} {why}: kept in float32", UserWarning, stacklevel=3)
    return lowered


def compile_program(program: LoadedProgram, model: str | None = None, weights: str | None = None,
                    seed: int = 0, opset: int | None = None, inline: bool = False,
                    init_missing: bool = False, dtype: str | None = None,
                    layer_outputs: bool = False, require_weights: bool = False) -> "onnx.ModelProto":
    """Compile one model to a ModelProto with its weights attached (see compile_for_saving for the options)."""
    return compile_for_saving(program, model, weights, seed, opset, inline, init_missing, dtype,
                              layer_outputs, require_weights).with_weights()


def save_model(proto: "onnx.ModelProto", path: str | os.PathLike) -> None:
    """Write a ModelProto atomically; over 2 GB the weights go to external data (serialize.py)."""
    from .serialize import write_attached
    write_attached(path, proto)


def params_of(program: LoadedProgram, model: str | None = None) -> list[dict[str, Any]]:
    lowered = lower_program(program, model)
    return [{"name": w.name, "shape": list(w.type.shape), "dtype": w.type.dtype} for w in lowered.graph.weights]


__all__ = ["LoadedProgram", "load_file", "load_source", "check_shapes", "lower_program", "compile_program",
           "compile_for_saving", "save_model", "params_of", "select_model"]
