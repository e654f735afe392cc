"""Shared fixtures. Real videos come from ../shared/data (never copied into the project)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# test helpers (fakes.py) import as top-level modules, here and in the worker processes tests start
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED = Path(os.environ.get("PRIVVID_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
SHARED_WEIGHTS = SHARED / "weights"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set PRIVVID_SHARED)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"shared weights not found at {SHARED_WEIGHTS} (set PRIVVID_SHARED)")
    return SHARED_WEIGHTS


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
