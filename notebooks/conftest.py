"""nbval runs each notebook in a fresh kernel that inherits this process's environment:
give those kernels a private ROMAKIT_HOME (journal) and ROMAKIT_CONFIG, so a test run
neither reads nor writes the user's own journal and profiles."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_home = tempfile.mkdtemp(prefix="romakit-nbval-")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["ROMAKIT_HOME"] = os.path.join(_home, "home")
    os.environ["ROMAKIT_CONFIG"] = os.path.join(_home, "profiles.toml")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_home, ignore_errors=True)
