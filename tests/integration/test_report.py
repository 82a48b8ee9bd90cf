"""`iotlake report` on the demo lake: the files it writes, and the page as headless Chromium renders it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark

# Injected into a copy of the page: records script errors, failed resource loads and console.error calls,
# then, after the load event (images decoded), what rendered, as JSON in <pre id="iotlake-probe">.
PROBE = """<script>
window.__problems = [];
window.addEventListener("error", (e) => {
  const t = e.target;
  window.__problems.push(t && t !== window ? "failed to load " + (t.src || t.href) : String(e.message));
}, true);
const __error = console.error;
console.error = (...args) => { window.__problems.push(args.join(" ")); __error(...args); };
window.addEventListener("load", () => {
  const tables = [...document.querySelectorAll("table")].map((t) => t.querySelectorAll("tbody tr").length);
  const images = [...document.images].map((i) => ({
    src: i.getAttribute("src"), natural: i.naturalWidth * i.naturalHeight,
    width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height,
  }));
  const sections = [...document.querySelectorAll("section")].map((s) => s.id);
  const probe = document.createElement("pre");
  probe.id = "iotlake-probe";
  probe.textContent = JSON.stringify({tables, images, sections, problems: window.__problems});
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def built(spark, config, demo_lake, tmp_path_factory: pytest.TempPathFactory):
    from iotlake import report

    out = tmp_path_factory.mktemp("report")
    return report.build_report(spark, config, "demo", out)


def test_report_files(built) -> None:
    html = built.index.read_text(encoding="utf-8")
    assert built.index.name == "index.html"
    assert {p.name for p in built.figures} == {
        "volumes.svg",
        "protocols.svg",
        "endpoint_classes.svg",
        "sankey_device_party.svg",
        "sankey_protocol_party.svg",
        "sankey_local_peers.svg",
        "flow_patterns.svg",
    }
    for figure in built.figures:
        assert figure.stat().st_size > 5000 and figure.read_text().lstrip().startswith("<?xml")
        assert f'src="figures/{figure.name}"' in html
    # Opens without a server or network: no script, no remote resource.
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    # The table versions it read are named, with the versions the lake has.
    for table in ("interval_volumes", "volume_stats", "endpoint_class_distribution", "flow_patterns"):
        assert table in built.versions
        assert f"iotlake.{table}</td>" in html
    assert "Data quality" in html and "builtin" in html and "not gated" in html
    assert "No event signatures were learned" in html


def test_report_command_rejects_an_unknown_dataset(
    config, demo_lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from iotlake.cli import main

    args = ["report", "--dataset", "nosuch", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--conf", str(config.conf_dir), "--lake", str(config.settings.lake_root)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no dataset 'nosuch' in the lake" in error and "demo" in error
    assert len(error.strip().splitlines()) <= 2  # one line (wrapped at most once), no traceback
    assert not (tmp_path / "out").exists()


def _chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make setup installs it)")
    return browser


def _headless(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def test_report_renders_in_chromium(built, tmp_path_factory: pytest.TempPathFactory) -> None:
    browser = _chromium()
    page = built.index.read_text(encoding="utf-8")
    probe = built.index.with_name("probe.html")
    probe.write_text(page.replace("</head>", PROBE + "\n</head>", 1), encoding="utf-8")
    try:
        done = _headless(
            browser,
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--window-size=1280,2000",
            "--dump-dom",
            probe.as_uri(),
        )
    finally:
        probe.unlink()
    found = re.search(r'<pre id="iotlake-probe">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"the page did not finish loading: {done.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert result["problems"] == [] and console == [], (result["problems"], console)
    assert result["sections"] == ["volumes", "protocols", "endpoints", "patterns", "quality", "versions"]
    # Every table rendered rows (devices, categories, endpoints, patterns, captures, versions …).
    assert len(result["tables"]) >= 8 and all(rows > 0 for rows in result["tables"])
    # Every figure decoded and laid out with a real size.
    assert len(result["images"]) == len(built.figures)
    for image in result["images"]:
        assert image["natural"] > 0 and image["width"] > 100 and image["height"] > 50, image

    shot = tmp_path_factory.mktemp("screenshot") / "report.png"
    _headless(browser, "--window-size=1280,2400", f"--screenshot={shot}", built.index.as_uri())
    assert shot.stat().st_size > 50_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
