"""The parser ships generated (grammar/model_parser.py, Lark's standalone tool): it is fresh against
grammar/model.lark, and parsing unpickles nothing, caches nothing and needs no lark at run time (issue 13,
defect 2: `Lark(cache=True)` unpickled a file of predictable name in the shared temporary folder)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from modelc.compiler.parse import parse_text, parser
from modelc.grammar.generate_parser import PARSER, REGENERATE, fresh_parser_source, tables_of

PROGRAM = "model m(x: float32[batch, 3]) {\n  y = x -> dense(2)\n  return y\n}\n"

# A fresh interpreter in which every way of unpickling raises, then `modelc check` as the command line runs it.
NO_PICKLE = """\
import pickle, sys
def refuse(*args, **kwargs):
    raise AssertionError("something was unpickled")
pickle.load = pickle.loads = refuse
pickle.Unpickler = refuse
from modelc.cli import main
rc = main(["check", sys.argv[1]])
print(rc, sorted(m for m in sys.modules if m == "lark" or m.startswith("lark.")))
"""


def test_the_generated_parser_is_fresh():
    assert tables_of(PARSER.read_text(encoding="utf-8")) == tables_of(fresh_parser_source()), \
        f"grammar/model_parser.py is stale against grammar/model.lark: regenerate it with `{REGENERATE}`"


def test_the_generated_parser_is_deterministic():
    """The same grammar gives the same file (Lark numbers its states in set order; the generator renumbers)."""
    assert fresh_parser_source() == fresh_parser_source()


def test_check_unpickles_nothing_and_leaves_no_cache(tmp_path):
    model = tmp_path / "m.model"
    model.write_text(PROGRAM)
    cache_dir = tmp_path / "tmp"
    cache_dir.mkdir()
    result = subprocess.run([sys.executable, "-c", NO_PICKLE, str(model)], capture_output=True, text=True,
                            env={"TMPDIR": str(cache_dir), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout   # exit 0, lark never imported
    assert list(cache_dir.iterdir()) == []   # no cache file written in the temporary folder


def test_the_parser_has_no_cache_and_keeps_positions():
    from modelc.compiler import parse
    assert "cache=True" not in Path(parse.__file__).read_text()
    lark = parser()
    assert lark.options.cache is False
    assert lark.options.propagate_positions and lark.options.maybe_placeholders
    assert set(lark.options.start) == {"start", "metric_spec"}
    ret = parse_text(PROGRAM, "m.model").definitions[0].body[0]
    assert (ret.loc.line, ret.loc.col, ret.loc.end_line, ret.loc.end_col) == (2, 3, 2, 20)
