"""The built-in metrics (prelude.model), shipped parsed and checked as prelude.json, so that evaluating
with them needs no parser: `modelc eval model.onnx --metric mse` never imports lark.

    python -m modelc.runtime.prelude     # rewrite prelude.json after editing prelude.model
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..compiler import nodes as N
from ..compiler.files import atomic_write

PRELUDE = Path(__file__).with_name("prelude.model")
PRELUDE_JSON = PRELUDE.with_suffix(".json")
REGENERATE = "python -m modelc.runtime.prelude"


@lru_cache(maxsize=1)
def prelude_definitions() -> list[N.Definition]:
    """The prelude's definitions, their spans in prelude.model (where its diagnostics point)."""
    with open(PRELUDE_JSON, encoding="utf-8") as f:
        return N.from_json(json.load(f)["definitions"], str(PRELUDE))


def fresh_prelude_json() -> str:
    """prelude.model parsed and checked now (the parser and checker load here), as prelude.json holds it."""
    from ..compiler import driver
    program = driver.load_file(PRELUDE)  # raises on any check error
    return json.dumps({"regenerate": REGENERATE, "definitions": N.to_json(program.order)}, indent=0) + "\n"


def main() -> None:
    text = fresh_prelude_json()
    with atomic_write(PRELUDE_JSON) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
    print(f"wrote {PRELUDE_JSON}")


if __name__ == "__main__":
    main()
