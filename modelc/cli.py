"""`modelc` command line: check, compile, summary, params (run, eval, compare: runtime)."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import warnings
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .compiler.source import ModelcError
from .compiler.types import FLOAT_DTYPES
from .runtime.defaults import DEFAULT_CALIBRATION_ROWS
from .runtime_cli import add_import_root

if TYPE_CHECKING:
    import onnx

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from .compiler import driver
    try:
        program = driver.load_file(args.file)
        program.max_weights = args.max_weights_size
        diagnostics = driver.check_shapes(program)
    except ModelcError as e:  # a file that does not load (syntax, imports, duplicates)
        program, diagnostics = None, e.diagnostics
    for d in diagnostics:
        _err(d.render())
    if diagnostics:
        if any(d.span is not None for d in diagnostics):  # not for an unreadable file: one line says it all
            _err(f"{len(diagnostics)} error{'s' * (len(diagnostics) != 1)}")
        return EXIT_USER
    assert program is not None
    kinds = [d.kind for d in program.order]
    print(f"{args.file}: ok ({kinds.count('model')} models, {kinds.count('layer')} layers, "
          f"{kinds.count('metric')} metrics)")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import driver
    _check_quantize(args)
    if not args.dump:  # the output checked before the compile, which may take long
        from .compiler.files import check_writable
        check_writable(args.output or Path(args.file).with_suffix(".onnx"),
                       (args.file, args.weights, getattr(args, "calibrate", None)))
    program = driver.load_file(args.file)
    program.max_weights = args.max_weights_size
    if args.dump == "ast":
        for d in program.order:
            print(d)
        return EXIT_OK
    if args.dump == "ir":
        from .compiler.dump import dump_ir
        print(dump_ir(driver.lower_program(program, args.model)))
        return EXIT_OK
    with warnings.catch_warnings(record=True) as caught:  # float16 misfits, each named on one line
        warnings.simplefilter("always")
        compiled = driver.compile_for_saving(program, args.model, args.weights, args.seed, args.opset, args.inline,
                                             args.init_missing, args.dtype, strict_float16=args.strict_float16)
    for w in caught:
        _err(f"warning: {w.message}")
    if compiled.initialized:  # random weights are never silent
        n, why = len(compiled.initialized), f"missing from {args.weights}" if args.weights else "no --weights given"
        _err(f"initialized {n} weight{'s' * (n != 1)} from --seed {args.seed} ({why})")
    proto = compiled.proto
    if args.dump == "onnx":  # the graph, with the weights shown as the typed inputs they replace
        import onnx
        print(onnx.printer.to_text(proto))
    out = args.output or str(Path(args.file).with_suffix(".onnx"))
    if args.quantize:
        return _save_quantized(args, compiled.with_weights(), out)
    compiled.save(out)
    source = f" from {args.weights}" if args.weights else ""
    print(f"wrote {out} ({len(compiled.slots)} weights{source}, {len(proto.functions)} layer functions, "
          f"opset {proto.opset_import[0].version})")
    return EXIT_OK


def _check_quantize(args: argparse.Namespace) -> None:
    """compile --quantize's options, refused before anything is compiled."""
    from .compiler.source import user_error
    if args.quantize and args.dtype not in (None, "float32"):
        raise user_error(f"--quantize {args.quantize} quantizes a float32 model; leave out --dtype {args.dtype}")
    if args.calibrate and args.quantize != "int8-static":
        raise user_error("--calibrate is for --quantize int8-static (int8 quantizes the weights only: no data)")
    if args.quantize == "int8-static" and not args.calibrate:
        raise user_error("--quantize int8-static needs --calibrate DATA: the rows its activation ranges come from")


def _save_quantized(args: argparse.Namespace, proto: "onnx.ModelProto", out: str) -> int:
    """compile --quantize: the runtime quantizes (it needs onnxruntime, imported only here); written atomically,
    its temporary files in a folder beside the output."""
    from .compiler import driver
    from .runtime.quantize import quantize
    quantized = quantize(proto, args.quantize, args.calibrate, args.calibration_rows,
                         workdir=str(Path(out).resolve().parent))
    driver.save_model(quantized, out)
    rows = f", calibrated on {args.calibration_rows} rows of {args.calibrate}" if args.calibrate else ""
    print(f"wrote {out} ({args.quantize}{rows}, opset {quantized.opset_import[0].version})")
    return EXIT_OK


def cmd_params(args: argparse.Namespace) -> int:
    if args.file.endswith(".onnx"):  # a compiled model: its initializers
        from .compiler.onnx_file import load_onnx, onnx_params
        rows = onnx_params(load_onnx(args.file))
    else:
        from .compiler import driver
        rows = driver.params_of(driver.load_file(args.file), args.model)
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        shape = "[" + ", ".join(str(d) for d in r["shape"]) + "]"
        print(f"{r['name']:<{width}}  {shape:<16} {r['dtype']}")
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    if args.file.endswith(".onnx"):  # a compiled model: inputs, outputs, layer functions, weights
        from .compiler.onnx_file import load_onnx, render_onnx_summary
        print(render_onnx_summary(load_onnx(args.file)))
        return EXIT_OK
    from .compiler import driver
    from .compiler.summary import render_summary
    print(render_summary(driver.lower_program(driver.load_file(args.file), args.model)))
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from .importer import write_import
    model, weights, n = write_import(args.file, args.output, args.stub_unknown)
    print(f"wrote {model} and {weights} ({n} weights)")
    return EXIT_OK


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="which model of the file (needed when it holds several)")
    add_import_root(p)


def _weights_budget(p: argparse.ArgumentParser) -> None:
    from .compiler.limits import WEIGHTS_SIZE, format_size, parse_size

    def size(text: str) -> int:
        try:
            return parse_size(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    p.add_argument("--max-weights-size", type=size, metavar="SIZE",
                   help=f"refuse a model whose weights exceed SIZE, such as 64GB (default "
                        f"{format_size(WEIGHTS_SIZE.default)}, or ${WEIGHTS_SIZE.env})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelc", description="Compile .model files to ONNX, run and evaluate them.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"modelc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check", help="parse and type/shape check; diagnostics only")
    p.add_argument("file")
    _weights_budget(p)
    add_import_root(p)
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("compile", help="compile to ONNX")
    p.add_argument("file")
    p.add_argument("-o", "--output", help="output .onnx (default: FILE with .onnx)")
    _model_options(p)
    _weights_budget(p)
    p.add_argument("--weights", help=".safetensors or .npz with weights by name")
    p.add_argument("--init-missing", action="store_true", help="initialize weights the file lacks")
    p.add_argument("--seed", type=int, default=0, help="seed of the initializers (default 0)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: newest supported)")
    p.add_argument("--inline", action="store_true", help="one flat graph instead of a function per layer")
    p.add_argument("--dtype", choices=list(FLOAT_DTYPES),
                   help="cast float32 inputs, weights and computation to this dtype")
    p.add_argument("--strict-float16", action="store_true",
                   help="with --dtype float16: a weight or constant over float16's range is an error, not kept float32")
    p.add_argument("--dump", choices=["ast", "ir", "onnx"], help="print a stage's output")
    p.add_argument("--quantize", choices=["int8", "int8-static"],
                   help="int8 weights of MatMul/Gemm/Conv (dynamic), or weights and activations (static)")
    p.add_argument("--calibrate", metavar="DATA", help="int8-static: the data whose first rows calibrate it")
    p.add_argument("--calibration-rows", type=int, default=DEFAULT_CALIBRATION_ROWS, metavar="N",
                   help=f"int8-static: how many rows of --calibrate (default {DEFAULT_CALIBRATION_ROWS})")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("summary", help="Keras-style table of layers, output shapes, params")
    p.add_argument("file", help="a .model or .onnx file")
    _model_options(p)
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("params", help="weight names, shapes, dtypes, in order")
    p.add_argument("file", help="a .model or .onnx file")
    _model_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_params)

    p = sub.add_parser("import", help="a Keras model (.keras, legacy .h5) as .model source and .safetensors weights")
    p.add_argument("file", help="a .keras archive or a legacy .h5 full-model file")
    p.add_argument("-o", "--output", help="the .model to write (default: FILE with .model); the weights go beside "
                                          "it as .safetensors")
    p.add_argument("--stub-unknown", action="store_true",
                   help="write a stub layer (params declared from the file) for each layer that cannot import")
    p.set_defaults(run=cmd_import)


    from .runtime_cli import add_runtime_commands
    add_runtime_commands(sub)
    from .editor_cli import add_editor_commands
    add_editor_commands(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program stands so that it unwinds as Ctrl-C does: temporaries removed."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        return _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _confined_imports(args: argparse.Namespace) -> AbstractContextManager[None]:
    """--import-root: imports may not leave the folder (the module is imported only when it is given)."""
    if getattr(args, "import_root", None) is None:
        return nullcontext()
    from .compiler.imports import confined_imports
    return confined_imports(args.import_root)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _run(args: argparse.Namespace) -> int:
    """The command, its output flushed, every failure an exit code and a message."""
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with _confined_imports(args):
            code = run(args)
        if not sys.stdout.closed:  # the language server closes it when the client says exit
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except ModelcError as e:
        for d in e.diagnostics:
            _err(d.render())
        return EXIT_USER
    except Terminated:
        _err("modelc: terminated (SIGTERM); temporary files removed")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        _err("modelc: interrupted")
        return 130
    except BrokenPipeError:  # `modelc params f | head -1`: the reader has all it wanted (Python's note on SIGPIPE)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as e:  # a file the user named could not be read or written
        where = f": {e.filename}" if e.filename else ""
        _err(f"error: {e.strerror or e}{where}")
        return EXIT_USER
    except RecursionError:
        _err("modelc: error: the program is nested too deeply")
        return EXIT_USER
    except Exception as e:  # noqa: BLE001 - a user never sees a traceback
        _err(f"modelc: internal error: {type(e).__name__}: {e} (please report it with the input file)")
        return EXIT_USER


if __name__ == "__main__":
    sys.exit(main())
