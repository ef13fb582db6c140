"""Loads the bad-input corpus (tests/fixtures/bad-input/corpus.py) for unit and integration
tests: the directory name has a hyphen, so it is loaded by path rather than imported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CORPUS_FILE = Path(__file__).resolve().parent / "fixtures" / "bad-input" / "corpus.py"


def load_corpus() -> ModuleType:
    """The corpus module (`BAD`, `VALID`, the builders), loaded once per process."""
    name = "seatflow_bad_input_corpus"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, CORPUS_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return module
