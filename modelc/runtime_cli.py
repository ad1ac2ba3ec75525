"""Sub-commands run, eval and compare (added by the runtime)."""
from __future__ import annotations

import argparse


def add_runtime_commands(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    return None
