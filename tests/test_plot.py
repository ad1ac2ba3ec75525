"""`modelc plot`: the SVG is XML with one node per layer instance (a repeat stage: one node for all its
instances), and each node shows the output shape and parameter count `modelc summary` gives (the oracle:
modelc.summary's rows); inputs and outputs are marked; `--expand` opens user layers into clusters; a .dot
file needs no Graphviz, and without it an .svg says how to install it."""
from __future__ import annotations

import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import modelc
from helpers import ROOT, SAMPLES, run_cli

SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed (.ci/run installs it: apt-get install graphviz)")


def svg_of(tmp_path: Path, sample: Path, *options: str) -> ET.Element:
    out = tmp_path / f"{sample.stem}.svg"
    done = run_cli("plot", sample, "-o", out, *options)
    assert done.returncode == 0, done.stderr
    return ET.parse(out).getroot()   # parses as XML, or raises


def nodes(svg: ET.Element, kind: str = "node") -> dict[str, list[str]]:
    """Each graph node (or cluster) of a Graphviz SVG: its id -> the lines of its label."""
    found = {}
    for g in svg.iter(f"{SVG}g"):
        if g.get("class") == kind:
            found[g.find(f"{SVG}title").text] = [t.text for t in g.findall(f"{SVG}text")]
    return found


def summary_rows(sample: Path) -> dict[str, dict[str, str]]:
    """The layer rows of the `modelc summary` table, as it prints them: path -> layer, shape, params."""
    done = run_cli("summary", sample)
    assert done.returncode == 0, done.stderr
    rows = {}
    for line in done.stdout.splitlines():
        m = re.fullmatch(r"│ (\w+) \((\w+)\) +│ (.+?) +│ +([\d,]+) │", line)
        if m and m.group(2) != "Input":
            rows[m.group(1)] = {"layer": m.group(2), "shape": m.group(3), "params": m.group(4)}
    return rows


@needs_dot
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_layer_is_a_node_with_the_summarys_shape_and_params(tmp_path, sample):
    svg = svg_of(tmp_path, sample)
    drawn = nodes(svg)
    rows = summary_rows(sample)
    order = list(rows)
    layers = {k.split(":", 1)[1]: v for k, v in drawn.items() if k.startswith("layer:")}
    for path, label in layers.items():
        row = rows.pop(path)
        assert label == [f"{path} ({row['layer']})", row["shape"], f"{row['params']} params"]
    for node, label in ((k, v) for k, v in drawn.items() if k.startswith("repeat:")):
        title, names, shape, params = label
        count, shared, layer = re.fullmatch(r"repeat (\d+)( shared)? × (\w+)", title).groups()
        first, last = (names.split(" … ") * 2)[:2]
        members = order[order.index(first):order.index(last) + 1]
        assert node == f"repeat:{first}"
        assert len(members) == (1 if shared else int(count)) and all(rows[m]["layer"] == layer for m in members)
        assert shape == rows[last]["shape"]
        assert int(params.removesuffix(" params").replace(",", "")) == sum(
            int(rows.pop(m)["params"].replace(",", "")) for m in members)
    assert rows == {}, "layers of the summary missing from the picture"
    assert {k for k in drawn if k.startswith("input:")} == {f"input:{n}" for n in input_names(sample)}


def input_names(sample: Path) -> list[str]:
    """The `(Input)` rows of `modelc summary`."""
    return [m.group(1) for m in re.finditer(r"│ (\w+) \(Input\)", run_cli("summary", sample).stdout)]


@needs_dot
def test_the_housing_picture(tmp_path):
    sample = ROOT / "samples" / "housing.model"
    drawn = nodes(svg_of(tmp_path, sample))
    assert set(drawn) == {"input:x", "layer:my_dense", "repeat:residual", "op:Concat", "layer:dense",
                          "layer:exponential", "output:y"}
    residual = [r for r in modelc.summary(sample) if r["layer"] == "residual"]
    assert len(residual) == 3
    assert drawn["repeat:residual"] == ["repeat 3 × residual", "residual … residual_2", "[batch, 30]",
                                        f"{sum(r['params'] for r in residual):,} params"]
    assert drawn["input:x"] == ["x", "[batch, 8]"] and drawn["output:y"] == ["y", "[batch, 1]"]


@needs_dot
def test_expand_opens_user_layers_into_clusters(tmp_path):
    svg = svg_of(tmp_path, ROOT / "samples" / "book.model", "--expand")
    clusters = nodes(svg, "cluster")
    assert list(clusters) == ["cluster_repeat:residual_block", "cluster_layer:residual_block_4"]
    assert clusters["cluster_repeat:residual_block"][:2] == ["repeat 4 × residual_block",
                                                            "residual_block … residual_block_3"]
    assert clusters["cluster_layer:residual_block_4"] == ["residual_block_4 (residual_block)", "[batch, 30]",
                                                         "1,860 params"]
    drawn = nodes(svg)
    # inside: the block's own `repeat n_layers dense(...)`, n_layers = 2, with the block's shapes
    assert drawn["repeat:residual_block/repeat:dense"] == ["repeat 2 × dense", "dense … dense_1", "[batch, 30]",
                                                           "1,860 params"]
    assert "layer:residual_block_4" not in drawn
    closed = svg_of(tmp_path, ROOT / "samples" / "book.model")
    assert not nodes(closed, "cluster") and "repeat:residual_block/repeat:dense" not in nodes(closed)


def test_dot_needs_no_graphviz_and_svg_says_how_to_install_it(tmp_path):
    bare = dict(os.environ, PATH=str(Path(sys.executable).parent))   # the venv's programs only: no dot
    out = tmp_path / "m.dot"
    done = run_cli_env(bare, "plot", ROOT / "samples" / "housing.model", "-o", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith('digraph "housing" {') and '"repeat:residual" -> "op:Concat";' in text
    svg = run_cli_env(bare, "plot", ROOT / "samples" / "housing.model", "-o", tmp_path / "m.svg")
    assert svg.returncode == 1 and "apt-get install graphviz" in svg.stderr and "Traceback" not in svg.stderr
    assert not (tmp_path / "m.svg").exists()


def run_cli_env(env: dict, *args):
    import subprocess
    from helpers import MODELC
    return subprocess.run([MODELC, *map(str, args)], capture_output=True, text=True, env=env)


def test_bad_outputs_and_models_are_user_errors(tmp_path):
    wrong = run_cli("plot", ROOT / "samples" / "housing.model", "-o", tmp_path / "m.pdf")
    assert wrong.returncode == 1 and "must end in .svg, .png or .dot" in wrong.stderr
    missing = run_cli("plot", ROOT / "samples" / "housing.model", "--model", "housng", "-o", tmp_path / "m.dot")
    assert missing.returncode == 1 and "did you mean 'housing'" in missing.stderr
    assert run_cli("plot", ROOT / "samples" / "housing.model").returncode == 2   # -o is required


def test_the_readme_shows_the_housing_picture():
    png = ROOT / "docs" / "housing.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![" in (ROOT / "README.md").read_text() and "docs/housing.png" in (ROOT / "README.md").read_text()
