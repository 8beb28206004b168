"""Fixtures of the app tests: app sessions that see the test's runs folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from apptest_support import new_app
from streamlit.testing.v1 import AppTest


@pytest.fixture
def app(runs_dir: Path) -> Callable[[], AppTest]:
    """Make app sessions (``app().run()``) that see the test's runs folder."""
    return new_app
