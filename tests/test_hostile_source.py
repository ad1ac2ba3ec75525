"""Hostile source files cost bounded time and memory and get a clear error (issue 13, defect 7): a FIFO or an
endless file is refused before a byte is read, a source file and its tokens are capped, a diagnostic stays
short, "did you mean" does bounded work, and `check` refuses weights `compile` could not hold. Through the
command line, with every special file built in the test's own folder."""
from __future__ import annotations

import difflib
import os
import subprocess
import sys

import pytest

import modelc
from helpers import MODELC, run_cli

HEADER = "model m(x: float32[batch, 3]) {\n"


def check(path, *options: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`modelc check`, which must answer within 60 s whatever the file (a FIFO once hung it forever)."""
    return subprocess.run([MODELC, "check", *options, str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run modelc in a fresh wrapper process whose children's peak resident memory is that of modelc alone."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "sys.stdout.write(p.stderr[-4000:])\n"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, len(p.stderr))\n")
    proc = subprocess.run([sys.executable, "-c", code, MODELC, *args], capture_output=True, text=True, timeout=120)
    *text, last = proc.stdout.rstrip("\n").split("\n")
    rc, rss_kb, stderr_len = map(int, last.split())
    return subprocess.CompletedProcess(args, rc, "", "\n".join(text) + f"\n[stderr: {stderr_len} chars]"), rss_kb / 1024


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.model"
    os.mkfifo(fifo)
    result = check(fifo)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot read {fifo}: it is a FIFO (named pipe), not a regular file"
    main = tmp_path / "main.model"
    main.write_text('import "pipe.model"\n' + HEADER + "  return x\n}\n")
    result = check(main)
    assert result.returncode == 1
    assert f"{main}:1:1: error: cannot import 'pipe.model': {fifo} is a FIFO (named pipe)" in result.stderr


def test_a_link_to_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link.model").symlink_to(tmp_path / "pipe")
    result = check(tmp_path / "link.model")
    assert result.returncode == 1 and "a FIFO (named pipe), not a regular file" in result.stderr


def test_an_endless_file_is_refused_by_its_size(tmp_path):
    """As /dev/zero would be read: a sparse 20 MiB file of zeros is over the 16 MB limit, refused before reading."""
    zeros = tmp_path / "zeros.model"
    with open(zeros, "wb") as f:
        f.truncate(20 * 2**20)
    result, rss = peak_rss_mb("check", str(zeros))
    assert result.returncode == 1
    assert (f"error: cannot read {zeros}: it is 21.0 MB, over the 16 MB limit on a source file "
            "(raise it with MODELC_MAX_SOURCE_SIZE)") in result.stderr
    assert rss < 150, f"{rss:.0f} MB"
    main = tmp_path / "main.model"
    main.write_text('import "zeros.model"\n' + HEADER + "  return x\n}\n")
    assert "cannot import 'zeros.model'" in check(main).stderr


def test_the_source_size_limit_is_overridable(tmp_path):
    program = tmp_path / "m.model"
    program.write_text(HEADER + "  return x\n}\n")   # 45 bytes
    assert check(program, env={"MODELC_MAX_SOURCE_SIZE": "45"}).returncode == 0
    result = check(program, env={"MODELC_MAX_SOURCE_SIZE": "44"})
    assert result.returncode == 1 and "it is 45 B, over the 44 B limit on a source file" in result.stderr
    result = check(program, env={"MODELC_MAX_SOURCE_SIZE": "lots"})
    assert result.returncode == 1 and "MODELC_MAX_SOURCE_SIZE: 'lots' is not a size" in result.stderr


def test_a_10_mb_expression_line_stops_at_the_token_limit(tmp_path):
    line = "  return " + " + ".join(["x"] * 2_500_000) + "\n"   # 10 MB, 5 million tokens
    program = tmp_path / "long.model"
    program.write_text(HEADER + line + "}\n")
    result, rss = peak_rss_mb("check", str(program))
    assert result.returncode == 1
    assert ("too many tokens: this one is past the 200,000-token limit on a source file "
            "(raise it with MODELC_MAX_TOKENS)") in result.stderr
    stderr_len = int(result.stderr.rsplit("[stderr: ", 1)[1].split()[0])
    assert stderr_len < 1000   # the line is quoted 200 characters wide, not 10 MB
    assert rss < 400, f"{rss:.0f} MB"


def test_the_token_limit_is_overridable(tmp_path):
    program = tmp_path / "m.model"
    program.write_text(HEADER + "  return x + x\n}\n")   # 18 tokens
    assert check(program, env={"MODELC_MAX_TOKENS": "18"}).returncode == 0
    result = check(program, env={"MODELC_MAX_TOKENS": "17"})
    assert result.returncode == 1 and f"{program}:3:1: error: too many tokens" in result.stderr


def test_a_long_name_gives_a_short_diagnostic(tmp_path):
    name = "y" * 4000   # under the 4,096 characters a token may have
    program = tmp_path / "m.model"
    program.write_text(HEADER + f"  return {name}\n}}\n")
    result = check(program)
    assert result.returncode == 1 and len(result.stderr) < 1600
    first = result.stderr.split("\n")[0]
    assert first.startswith(f"{program}:2:10: error: undefined name '{'y' * 100}")
    assert first.endswith("… (3,017 more characters)")   # the message cut at 1,000 characters


def test_a_huge_integer_literal_is_a_diagnostic(tmp_path):
    program = tmp_path / "m.model"
    program.write_text(HEADER + f"  return x * {'9' * 4000}\n}}\n")
    result = check(program)
    assert result.returncode == 1
    assert f"error: integer {'9' * 20}… (4,000 digits) is too large; the largest is 9223372036854775807\n" in result.stderr


def test_8000_undefined_names_suggest_for_the_shown_ones_only(tmp_path, monkeypatch):
    """"did you mean" compared every undefined name with every name in scope: 8,000 took 17 s. Now only the
    diagnostics shown (20) get a suggestion; the count of comparisons is the bound, whatever the machine."""
    body = "".join(f"  total_{i} = totl_{i}\n" for i in range(8000))
    source = HEADER + body + "  return x\n}\n"
    calls = []
    real = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    diagnostics = modelc.check_source(source, file="t.model")
    assert len(diagnostics) == 20 and diagnostics[0].message == "undefined name 'totl_0'"
    assert diagnostics[1].message == "undefined name 'totl_1'; did you mean 'total_0'?"
    assert len(calls) <= 20
    program = tmp_path / "m.model"
    program.write_text(source)
    result = check(program)
    assert result.returncode == 1 and result.stderr.endswith("20 errors\n")


def test_a_huge_shape_is_refused_by_check_and_compile(tmp_path):
    program = tmp_path / "m.model"
    program.write_text("model m(x: float32[batch, 99999999999]) = x -> dense(4)\n")
    result = check(program)
    assert result.returncode == 1
    # 99,999,999,999 x 4 float32 = 1.6 TB
    assert (f"{program}:1:48: error: the model's weights reach 1.6 TB with 'dense.kernel' "
            "(float32[99999999999, 4], 1.6 TB), over the 16 GB limit on the weights of a model "
            "(raise it with --max-weights-size or MODELC_MAX_WEIGHTS_SIZE)") in result.stderr
    assert check(program, "--max-weights-size", "2TB").returncode == 0
    result = run_cli("compile", program, "-o", tmp_path / "m.onnx")
    assert result.returncode == 1 and "over the 16 GB limit" in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_a_huge_repeat_is_refused_quickly(tmp_path):
    program = tmp_path / "m.model"
    program.write_text("model m(x: float32[batch, 8]) = x -> repeat 100000 dense(1024)\n")
    result, rss = peak_rss_mb("check", str(program))
    assert result.returncode == 1
    # 8x1024 + 1024 and then 1024x1024 + 1024 float32 per copy: the budget is reached at the 3,812th copy
    assert "the model's weights reach 16.0 GB with 'dense_3811.kernel' (float32[1024, 1024], 4.2 MB)" \
        in result.stderr
    assert rss < 300, f"{rss:.0f} MB"


@pytest.mark.parametrize("budget, ok", [("12400", True), ("12399", False), ("12.4KB", True), ("12.3KB", False)])
def test_the_weights_budget_counts_bytes(tmp_path, budget, ok):
    """dense(100) on 30 features: 30*100 + 100 float32 = 12,400 bytes."""
    program = tmp_path / "m.model"
    program.write_text("model m(x: float32[batch, 30]) = x -> dense(100)\n")
    result = run_cli("compile", program, "-o", tmp_path / "m.onnx", "--max-weights-size", budget)
    assert result.returncode == (0 if ok else 1), result.stderr
    assert (tmp_path / "m.onnx").exists() == ok
    env_result = check(program, env={"MODELC_MAX_WEIGHTS_SIZE": budget})
    assert env_result.returncode == (0 if ok else 1)
    api = modelc.check_file(program, max_weights_size=budget)
    assert (api == []) == ok and (ok or "over the" in api[0].message)


def test_a_bad_budget_is_a_usage_error(tmp_path):
    program = tmp_path / "m.model"
    program.write_text("model m(x: float32[batch, 30]) = x -> dense(100)\n")
    result = run_cli("check", "--max-weights-size", "lots", program)
    assert result.returncode == 2 and "'lots' is not a size; write, say, 64GB" in result.stderr


@pytest.mark.parametrize("body, message", [
    ("s" * 15_000_000, "a token of 15,000,002 characters; the longest a name, number or string may be is 4,096"),
    ("\\n" * 7_000_000, "unterminated string (or one of more than 4,096 characters); a string ends with '\"' on "
                        "the line where it starts"),
], ids=["plain", "escapes"])
def test_a_huge_string_literal_costs_little(tmp_path, body, message):
    """A 15 MB string as an instance name took 5 GB in the lexer's regex and the node names under it."""
    program = tmp_path / "m.model"
    program.write_text('model m(x: float32[batch, 3]) = x -> dense(4, name="' + body + '")\n')
    result, rss = peak_rss_mb("check", str(program))
    assert result.returncode == 1
    assert f"{program}:1:52: error: {message}" in result.stderr
    assert rss < 300, f"{rss:.0f} MB"


def test_a_token_longer_than_a_path_is_refused(tmp_path):
    program = tmp_path / "m.model"
    program.write_text(HEADER + f"  return {'y' * 5000}\n}}\n")
    result = check(program)
    assert result.returncode == 1
    assert (f"{program}:2:10: error: a token of 5,000 characters; the longest a name, number or string may be "
            "is 4,096") in result.stderr
