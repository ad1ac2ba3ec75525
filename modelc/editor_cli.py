"""Sub-commands for working in .model files: fmt, plot and lsp (added to the same parser as the others)."""
from __future__ import annotations

import argparse
import sys

from .compiler.source import ModelcError

EXIT_OK, EXIT_USER, EXIT_USAGE = 0, 1, 2


def cmd_fmt(args: argparse.Namespace) -> int:
    from .editor.fmt import format_file, format_text, model_files, unified_diff
    if args.stdin == bool(args.files):
        print("modelc fmt: error: give FILE... or --stdin (not both)", file=sys.stderr)
        return EXIT_USAGE
    if args.stdin:
        text = sys.stdin.read()
        formatted = format_text(text, "<stdin>")
        if args.check:
            sys.stdout.write(unified_diff(text, formatted, "<stdin>"))
            return EXIT_USER if formatted != text else EXIT_OK
        sys.stdout.write(formatted)
        return EXIT_OK
    failed = changed = 0
    for path in model_files(args.files):
        try:
            diff = format_file(path, check=args.check)
        except ModelcError as e:
            failed += 1
            for d in e.diagnostics:
                print(d.render(), file=sys.stderr)
            continue
        if diff is not None:
            changed += 1
            if args.check:
                sys.stdout.write(diff)
            print(f"{'would reformat' if args.check else 'reformatted'} {path}", file=sys.stderr)
    return EXIT_USER if failed or (args.check and changed) else EXIT_OK


def add_editor_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmt", help="rewrite .model files in the one canonical layout (comments kept)")
    p.add_argument("files", nargs="*", metavar="FILE", help=".model files, or folders to format every .model in")
    p.add_argument("--check", action="store_true",
                   help="change nothing: print the diff and exit 1 when a file is not formatted")
    p.add_argument("--stdin", action="store_true", help="format standard input to standard output")
    p.set_defaults(run=cmd_fmt)
    add_plot_command(sub)
    p = sub.add_parser("lsp", help="the language server, over stdin and stdout (the lsp extra: pygls)")
    p.add_argument("--stdio", action="store_true", help="over stdin and stdout: the only transport, and the "
                   "default (accepted for clients that pass it)")
    p.set_defaults(run=cmd_lsp)


def cmd_lsp(args: argparse.Namespace) -> int:
    from .editor.lsp import serve
    return serve()


def cmd_plot(args: argparse.Namespace) -> int:
    from .api import plot
    plot(args.file, args.output, args.model, args.expand)
    print(f"wrote {args.output}")
    return EXIT_OK


def add_plot_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="a picture of a model: its layers, shapes and parameter counts")
    p.add_argument("file", help="a .model file")
    p.add_argument("--model", help="which model of the file (needed when it holds several)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="model.svg or model.png (rendered by Graphviz's dot), or model.dot (needs nothing)")
    p.add_argument("--expand", action="store_true", help="open each user layer into a cluster of its layers")
    p.set_defaults(run=cmd_plot)
