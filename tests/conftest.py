"""Shared fixtures: one Spark session per test run, a lake in a temporary folder, the shared real data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IOTLAKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


def require_tools(*tools: str) -> None:
    """Skip when a command-line tool is missing."""
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@pytest.fixture(scope="session")
def lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lake")


@pytest.fixture(scope="session")
def config(lake_dir: Path):
    from iotlake.config import load_config

    cfg = load_config(REPO / "conf")
    cfg.settings.lake_root = str(lake_dir)
    return cfg


@pytest.fixture(scope="session")
def spark(config):
    """The one Spark session of the test run: local[2], few shuffle partitions, no UI."""
    from iotlake.spark import get_spark

    session = get_spark(
        config,
        app_name="iotlake-tests",
        master="local[2]",
        extra_conf={
            # Tiny inputs: fewer shuffle and Delta log-replay tasks (a demo build takes 47 s instead of 55 s).
            "spark.sql.shuffle.partitions": "2",
            "spark.databricks.delta.snapshotPartitions": "1",
            "spark.ui.enabled": "false",
            "spark.driver.memory": "2g",
        },
    )
    yield session
    session.stop()
