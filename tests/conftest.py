"""pytest configuration: tests import their shared helpers from tests/helpers.py, run from the repository root
(samples/ paths are repo-relative), and keep every temporary file in the checkout's own .test-tmp/, never in the
machine's shared temporary folder: TMPDIR, set before pytest first asks for a temporary folder, moves its
tmp_path (pytest-of-USER/pytest-N, the last three runs kept) and the subprocesses' and libraries' files there."""
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_TMP = ROOT / ".test-tmp"

sys.path.insert(0, os.path.dirname(__file__))
os.chdir(ROOT)
(PRIVATE_TMP / "tmp").mkdir(parents=True, exist_ok=True)
os.environ["TMPDIR"] = str(PRIVATE_TMP / "tmp")
tempfile.tempdir = None  # tempfile reads TMPDIR again

# `make fuzz EXAMPLES=N`: the hypothesis fuzzers (helpers.fuzz_settings) run N random examples each
if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz":
    from hypothesis import HealthCheck, settings
    settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100000")), deadline=None,
                              database=None, derandomize=False, suppress_health_check=list(HealthCheck))
    settings.load_profile("fuzz")
