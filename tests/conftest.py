"""pytest configuration: tests import their shared helpers from tests/helpers.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # samples/ paths are repo-relative
