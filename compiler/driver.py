"""The pipeline as functions: load (parse + imports) -> check -> lower -> emit -> save."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import ir
from . import nodes as N
from .check import check_definitions
from .lower import MAX_ERRORS, Lowerer, source_hash
from .parse import parse_text
from .source import CheckError, Diagnostic, ModelcError, SourceFiles, did_you_mean, error

if TYPE_CHECKING:
    import onnx

VERSION = "0.1.0"
EXTERNAL_DATA_BYTES = 2**31 - 2**24  # a protobuf holds at most 2 GB: weights beyond this go to FILE.data


@dataclass
class Program:
    """Every definition reachable from one file, with the texts for diagnostics."""

    root: str
    files: SourceFiles = field(default_factory=SourceFiles)
    definitions: dict[str, N.Definition] = field(default_factory=dict)
    order: list[N.Definition] = field(default_factory=list)

    @property
    def models(self) -> list[N.Definition]:
        return [d for d in self.order if d.kind == "model" and d.loc.file == self.root]

    def hash(self) -> str:
        return source_hash("\0".join(f"{k}\0{v}" for k, v in sorted(self.files.texts.items())))


# Lowering recurses once per nested layer (about 8 frames each); CPython 3.11 runs Python-to-Python
# calls without growing the C stack, so a deeper limit is safe and lets long chains of layers compile.
RECURSION_LIMIT = 20_000


def load_source(text: str, file: str = "<string>") -> Program:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    program = Program(file)
    _load(program, file, text, [])
    return program


def load_file(path: str | os.PathLike) -> Program:
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelcError(Diagnostic(None, f"cannot read {path}: {getattr(e, 'strerror', None) or e}")) from None
    return load_source(text, path)


def _load(program: Program, file: str, text: str, stack: list[str]) -> None:
    program.files.texts[file] = text
    try:
        tree = parse_text(text, file)
    except ModelcError as e:
        raise ModelcError(program.files.attach(e.diagnostics)) from None
    duplicates = []
    for imp in tree.imports:
        base = Path(file).parent if not file.startswith("<") else Path.cwd()
        target = os.path.normpath(base / imp.path)
        if target in stack or target == os.path.normpath(file):
            chain = " -> ".join([*stack, os.path.normpath(file), target])
            raise ModelcError(program.files.attach([Diagnostic(imp.loc, f"import cycle: {chain}")]))
        if target in program.files.texts:
            continue
        try:
            imported = Path(target).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = (f"{target} is a folder, not a .model file" if Path(target).is_dir()
                   else f"{target} is not UTF-8 text" if isinstance(e, UnicodeDecodeError)
                   else f"no such file {target}")
            raise ModelcError(program.files.attach([Diagnostic(imp.loc, f"cannot import '{imp.path}': {why}")])) \
                from None
        _load(program, target, imported, [*stack, os.path.normpath(file)])
    for d in tree.definitions:
        if d.name in program.definitions:
            first = program.definitions[d.name].loc
            duplicates.append(Diagnostic(d.name_loc, f"'{d.name}' is already defined at {first}"))
            continue
        program.definitions[d.name] = d
        program.order.append(d)
    if duplicates:
        raise ModelcError(program.files.attach(duplicates))


def check_program(program: Program, models: list[N.Definition] | None = None,
                  lowered: dict[str, ir.Model] | None = None) -> list[Diagnostic]:
    """Every diagnostic for the program: names first, then the shapes of each model (of `models`,
    by default all). A model that lowers cleanly is kept in `lowered`, so compiling needs no second pass."""
    diagnostics = check_definitions(program.definitions, program.order)
    if not diagnostics:
        for model in program.models if models is None else models:
            try:
                result = Lowerer(program.definitions).lower_model(model)
                if lowered is not None:
                    lowered[model.name] = result
            except CheckError as e:
                diagnostics.extend(e.diagnostics)
            if len(diagnostics) >= MAX_ERRORS:
                break
    diagnostics.sort(key=lambda d: (d.span.file, d.span.line, d.span.col) if d.span else ("", 0, 0))
    return program.files.attach(diagnostics[:MAX_ERRORS])


def select_model(program: Program, name: str | None) -> N.Definition:
    models = program.models
    if name is not None:
        for m in models:
            if m.name == name:
                return m
        names = [m.name for m in models]
        raise ModelcError(Diagnostic(None, f"no model named '{name}' in {program.root}; models: "
                                           f"{', '.join(names) or 'none'}{did_you_mean(name, names)}"))
    if len(models) != 1:
        which = ", ".join(m.name for m in models)
        raise ModelcError(Diagnostic(None, f"{program.root} holds {len(models)} models"
                                           f"{' (' + which + ')' if which else ''}; pick one with --model NAME"
                                           if models else f"{program.root} defines no model"))
    return models[0]


def lower_program(program: Program, model: str | None = None, dtype: str | None = None) -> ir.Model:
    """The checked, lowered model: names checked in the whole program, shapes in the model compiled."""
    d = select_model(program, model) if program.models or model else None
    if dtype not in (None, "float32", "float16", "bfloat16", "float64"):
        raise ModelcError(Diagnostic(None, f"--dtype must be float16, bfloat16, float32 or float64, got {dtype}"))
    kept: dict[str, ir.Model] = {}
    diagnostics = check_program(program, [d] if d is not None and dtype is None else [], kept)
    if diagnostics:
        raise CheckError(diagnostics)
    if d is None:
        d = select_model(program, model)  # reports "defines no model"
    try:
        lowered = kept[d.name] if d.name in kept else Lowerer(program.definitions, dtype).lower_model(d)
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

    def with_weights(self) -> "onnx.ModelProto":
        from .emit import attach_weights
        attach_weights(self.proto, self.slots, self.arrays)
        self.slots, self.arrays = [], {}
        return self.proto

    def save(self, path: str | os.PathLike) -> None:
        from .serialize import write_model
        total = sum(a.nbytes for a in self.arrays.values())
        with reporting_write_errors(path):
            write_model(path, self.proto, self.slots, self.arrays, external=total > EXTERNAL_DATA_BYTES)


def compile_program(program: Program, model: str | None = None, weights: str | None = None,
                    seed: int = 0, opset: int | None = None, inline: bool = False,
                    init_missing: bool = False, dtype: str | None = None,
                    layer_outputs: bool = False, attach: bool = True) -> Any:
    """Compile one model. `dtype` recasts float32 inputs, weights and computation (compile --dtype);
    `layer_outputs` adds every top-level layer's output as a graph output (compare --layers).
    Returns the ModelProto, or with attach=False a Compiled whose save() writes from the arrays."""
    from .emit import DEFAULT_OPSET, MIN_OPSET, emit_model
    from .weights import bind_weights

    import onnx
    opset = DEFAULT_OPSET if opset is None else opset
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ModelcError(Diagnostic(None, f"--opset must be between {MIN_OPSET} and {newest}, got {opset}"))
    lowered = lower_program(program, model, dtype)
    try:
        arrays = bind_weights(lowered.graph.weights, weights, seed, init_missing, cast=dtype is not None)
    except ModelcError as e:
        raise type(e)(program.files.attach(e.diagnostics)) from None
    meta = {"modelc.version": VERSION, "modelc.source_sha256": lowered.source_hash,
            "modelc.source": os.path.basename(program.root), "modelc.seed": str(seed)}
    if dtype:
        meta["modelc.dtype"] = dtype
    extra = [ir.Value(r.value, r.output) for r in lowered.layers if layer_outputs and r.value and r.output]
    # The checker reads the graph with the weights as typed inputs: the same nodes, types and shapes
    # without serializing gigabytes of weights twice. Their bytes are then attached in place.
    proto = emit_model(lowered, None, opset=opset, inline=inline, metadata=meta, extra_outputs=extra)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ModelcError(Diagnostic(None, f"internal error: emitted ONNX fails the checker: {e}")) from e
    compiled = Compiled(proto, lowered.graph.weights, arrays)
    return compiled if not attach else compiled.with_weights()


@contextmanager
def reporting_write_errors(path: str | os.PathLike) -> Iterator[None]:
    """An unwritable output is the user's to fix: say which path, not which temporary file."""
    try:
        yield
    except IsADirectoryError:
        raise ModelcError(Diagnostic(None, f"cannot write {path}: it is a folder")) from None
    except OSError as e:
        raise ModelcError(Diagnostic(None, f"cannot write {path}: {e.strerror or e}")) from None


def save_model(proto: "onnx.ModelProto", path: str | os.PathLike) -> None:
    """Write atomically (a temporary file in the same folder, then rename); >2 GB goes to external data."""
    with reporting_write_errors(path):
        _save_model(proto, path)


def _save_model(proto: "onnx.ModelProto", path: str | os.PathLike) -> None:
    import onnx
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    large = sum(_tensor_bytes(t) for t in proto.graph.initializer) > EXTERNAL_DATA_BYTES
    try:
        if large:
            data_name = path.name + ".data"
            tmp_data = path.with_name(f".{data_name}.tmp{os.getpid()}")
            copy = onnx.ModelProto()
            copy.CopyFrom(proto)  # saving with external data rewrites the tensors it is given
            onnx.save_model(copy, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=tmp_data.name, size_threshold=1024)
            del copy
            # point the model at the final data file name, then move both into place
            saved = onnx.load_model(str(tmp), load_external_data=False)
            for t in saved.graph.initializer:
                for entry in t.external_data:
                    if entry.key == "location":
                        entry.value = data_name
            onnx.save_model(saved, str(tmp))
            os.replace(tmp_data, path.with_name(data_name))
        else:
            from .serialize import write_attached
            if write_attached(path, proto):  # writes atomically itself
                return
            onnx.save_model(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _tensor_bytes(t: "onnx.TensorProto") -> int:
    """Size from dims and dtype: ByteSize() would serialize the tensor to count it."""
    import math

    import onnx
    return math.prod(t.dims) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def params_of(program: Program, model: str | None = None) -> list[dict[str, Any]]:
    lowered = lower_program(program, model)
    return [{"name": w.name, "shape": list(w.type.shape), "dtype": w.type.dtype} for w in lowered.graph.weights]


__all__ = ["Program", "load_file", "load_source", "check_program", "lower_program", "compile_program",
           "save_model", "params_of", "select_model", "error"]
