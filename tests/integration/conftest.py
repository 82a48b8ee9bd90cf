"""The demo dataset, generated, ingested and built once per test run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iotlake.capture.demo import generate_demo

    directory = tmp_path_factory.mktemp("demo")
    generate_demo(directory)
    return directory


@pytest.fixture(scope="session")
def truth(demo_dir: Path) -> dict:
    return json.loads((demo_dir / "truth.json").read_text())


@pytest.fixture(scope="session")
def demo_lake(spark, config, demo_dir: Path):
    """Ingest and build the demo dataset; returns the ingest report."""
    from iotlake import pipeline

    report = pipeline.ingest(
        spark, config, "demo", pipeline.plan_directory(config, "demo", demo_dir), progress=False
    )
    pipeline.build(spark, config, ["demo"])
    return report
