"""The notebooks run top to bottom on the demo lake with nbclient.

A notebook starts its own Spark session (a JVM) when it opens the lake. To keep the test within its time
budget the notebooks share one kernel, run in order: the first starts Spark cold, and each one begins with
`%reset -f`, so every notebook runs from an empty namespace and cannot lean on another's variables.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
EXPECTED = {"01_volumes", "02_protocols", "03_endpoints", "04_signatures_patterns", "05_comparison"}

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def kernel(demo_lake, config) -> Iterator[NotebookClient]:
    """One kernel for the module, pointed at the session's demo lake (IOTLAKE_LAKE, IOTLAKE_DATASET)."""
    import nbformat

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IOTLAKE_LAKE", str(config.settings.lake_root))
        patch.setenv("IOTLAKE_DATASET", "demo")
        patch.setenv("IOTLAKE_CONF", str(config.conf_dir))
        client = NotebookClient(
            nbformat.v4.new_notebook(),
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(REPO / "notebooks")}},
        )
        yield client
        if client.km is not None:
            client._cleanup_kernel()


def test_every_notebook_is_there_without_outputs() -> None:
    import nbformat

    assert {p.stem for p in NOTEBOOKS} == EXPECTED
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} has outputs"
        assert "IOTLAKE_LAKE" in code[0].source, f"{path.name}: the first code cell takes the lake path"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_the_demo_lake(path: Path, kernel: NotebookClient) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("%reset -f"))
    kernel.nb = nb
    started = time.monotonic()
    kernel.execute(cleanup_kc=False)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert [o for o in shown if "image/png" in o.data], f"{path.name} drew no figure"
    assert [o for o in shown if "text/html" in o.data], f"{path.name} showed no table"
    versions = nb.cells[-1].outputs[0].data["text/plain"]
    assert re.search(r"'[a-z_]+': \d+", versions), versions
    assert time.monotonic() - started < 120
