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
