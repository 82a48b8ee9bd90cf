"""The demo dataset, generated, ingested and built once per test run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from iotlake.cli import main
from iotlake.config import Config, load_config
from tests.conftest import REPO


def run_cli(config: Config, *args: str) -> int:
    """`iotlake ARGS` in this process (its Spark session) on `config`'s conf/ and lake; the exit status."""
    try:
        main([*args, "--conf", str(config.conf_dir), "--lake", config.lake_root])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, config: Config) -> Config:
    """A project whose conf/ is a copy (the gate writes conf/datasets.csv) and whose lake is the shared one."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "conf", root / "conf")
    for folder in ("sql", "expectations"):
        (root / folder).symlink_to(REPO / folder, target_is_directory=True)
    copy = load_config(root / "conf")
    copy.settings.lake_root = config.lake_root
    return copy


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
