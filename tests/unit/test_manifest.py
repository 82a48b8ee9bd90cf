"""dataset.yaml of a contribution: a valid one loads; every problem is one line naming the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from iotlake.errors import ConfigError
from iotlake.quality.manifest import field_path, load_manifest, pms_folders

MACS = "device,mac\nplug,02:00:00:00:00:21\nhub,02:00:00:00:00:24\n"


def good() -> dict[str, Any]:
    return {
        "dataset": "lab2024",
        "contributor": "Jane Doe <jane@example.org>",
        "licence": "CC-BY-4.0",
        "source": "https://example.org/lab2024",
        "sites": [
            {
                "name": "home1",
                "macs": "home1/macs.csv",
                "site_config": "home1/site.yaml",
                "captures": [
                    {"file": "home1/idle.pcap", "start": 1700000000, "end": 1700003600},
                    {"file": "home1/active.pcapng", "labels": {"activity": "on", "run": 2}},
                ],
            },
            {"name": "home2", "macs": "home2/macs.csv", "captures": [{"file": "home2/night.pcap"}]},
        ],
    }


def contribution(folder: Path, manifest: dict[str, Any] | str) -> Path:
    """A folder with MAC maps, a site config and (empty) capture files; returns the manifest's path."""
    for site in ("home1", "home2"):
        (folder / site).mkdir(parents=True, exist_ok=True)
        (folder / site / "macs.csv").write_text(MACS)
    (folder / "home1" / "site.yaml").write_text("gateway_ips: [192.168.1.1]\n")
    for name in ("home1/idle.pcap", "home1/active.pcapng", "home2/night.pcap"):
        (folder / name).write_bytes(b"")  # the manifest checks that files exist; ingest reads them
    path = folder / "dataset.yaml"
    path.write_text(manifest if isinstance(manifest, str) else yaml.safe_dump(manifest, sort_keys=False))
    return path


def test_valid_manifest_loads(tmp_path: Path) -> None:
    manifest = load_manifest(contribution(tmp_path, good()))
    assert manifest.dataset == "lab2024"
    assert [s.name for s in manifest.sites] == ["home1", "home2"]
    idle, active = manifest.sites[0].captures
    assert (idle.name, idle.start, idle.end) == ("idle", 1700000000, 1700003600)
    assert (active.name, active.start, active.end) == ("active", None, None)
    assert active.labels == {"activity": "on", "run": "2"}
    # The folder works as well as the file.
    assert load_manifest(tmp_path) == manifest


def edit(change):
    def apply(data: dict[str, Any]) -> dict[str, Any]:
        change(data)
        return data

    return apply


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            edit(lambda d: d["sites"][0]["captures"].__setitem__(1, {"file": "home1/gone.pcap"})),
            "sites[0].captures[1].file: file not found",
        ),
        (
            edit(lambda d: d["sites"][1].__setitem__("macs", "home2/none.csv")),
            "sites[1].macs: file not found",
        ),
        (
            edit(lambda d: d["sites"][0].__setitem__("site_config", "home1")),
            "sites[0].site_config: not a file",
        ),
        (edit(lambda d: d.pop("licence")), "licence: required field is missing"),
        (edit(lambda d: d.__setitem__("contributor", "  ")), "contributor: must not be empty"),
        (edit(lambda d: d.__setitem__("license", "MIT")), "license: unknown field"),
        (
            edit(lambda d: d["sites"][0]["captures"][0].__setitem__("strat", 1)),
            "sites[0].captures[0].strat: unknown field",
        ),
        (edit(lambda d: d.__setitem__("dataset", "lab 2024")), "dataset: invalid dataset name 'lab 2024'"),
        (edit(lambda d: d["sites"][1].__setitem__("name", "../up")), "sites[1].name: invalid site name"),
        (edit(lambda d: d.__setitem__("sites", [])), "sites: list should have at least 1 item"),
        (edit(lambda d: d["sites"][1].__setitem__("captures", [])), "sites[1].captures: list should have"),
        (
            edit(lambda d: d["sites"][0]["captures"][0].__setitem__("end", 1699999999)),
            "sites[0].captures[0]: end (1699999999) is before start (1700000000)",
        ),
        (
            edit(lambda d: d["sites"][0]["captures"][0].__setitem__("start", "noon")),
            "sites[0].captures[0].start: input should be a valid number",
        ),
        (
            edit(lambda d: d["sites"][0]["captures"][0].__setitem__("start", -5)),
            "sites[0].captures[0].start: input should be greater than or equal to 0",
        ),
        (
            edit(lambda d: d["sites"][0]["captures"][1].__setitem__("labels", {"activity": ["on", "off"]})),
            "sites[0].captures[1].labels: label 'activity' must be a single value",
        ),
        (edit(lambda d: d["sites"][1].__setitem__("name", "home1")), "sites[1].name: duplicate site 'home1'"),
    ],
)
def test_manifest_problem_is_one_line_with_the_field_path(tmp_path: Path, change, problem: str) -> None:
    path = contribution(tmp_path, change(good()))
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {problem}"), message


def test_duplicate_capture_name_in_a_site(tmp_path: Path) -> None:
    data = good()
    (tmp_path / "home1" / "other").mkdir(parents=True)
    (tmp_path / "home1" / "other" / "idle.pcap").write_bytes(b"")
    data["sites"][0]["captures"].append({"file": "home1/other/idle.pcap"})
    path = contribution(tmp_path, data)
    with pytest.raises(ConfigError, match=r"sites\[0\]\.captures\[2\]\.file: capture name 'idle' is also"):
        load_manifest(path)


def test_malformed_mac_map_names_the_field_and_the_csv_line(tmp_path: Path) -> None:
    path = contribution(tmp_path, good())
    (tmp_path / "home2" / "macs.csv").write_text("device,mac\nplug,02:00:00:00:00\n")
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert str(info.value).startswith(
        f"{path}: sites[1].macs: {tmp_path / 'home2' / 'macs.csv'}:2: malformed MAC"
    )


def test_several_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    data = good()
    del data["licence"], data["source"]
    path = contribution(tmp_path, data)
    with pytest.raises(ConfigError, match=r": licence: required field is missing \(and 1 more\)$"):
        load_manifest(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("dataset: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "expected a mapping"),
    ],
)
def test_unreadable_manifest(tmp_path: Path, text: str, problem: str) -> None:
    path = contribution(tmp_path, text)
    with pytest.raises(ConfigError, match=problem):
        load_manifest(path)


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dataset\.yaml: manifest not found"):
        load_manifest(tmp_path)


def test_field_path() -> None:
    assert field_path(("sites", 0, "captures", 1, "file")) == "sites[0].captures[1].file"
    assert field_path(()) == "(top level)"


# ------------------------------------------------------------------------------------------ kind: pms-files

STATS = (
    "Device,StartTime,Frames,Bytes,TxFrames,TxBytes,RxFrames,RxBytes\nPlug (LAB-1),0,10,1000,6,600,4,400\n"
)


def pms_good() -> dict[str, Any]:
    return {
        "dataset": "lab2023",
        "kind": "pms-files",
        "contributor": "Jane Doe <jane@example.org>",
        "licence": "CC-BY-4.0",
        "source": "https://example.org/lab2023",
    }


def pms_contribution(folder: Path, manifest: dict[str, Any], data: str = ".") -> Path:
    """A folder of the earlier tool's files (one stats file, a capture folder with a space, a MAC map)."""
    base = folder / data
    (base / "macs").mkdir(parents=True, exist_ok=True)
    (base / "macs" / "LAB-MACs.txt").write_text("Plug,02:00:00:00:00:21\n")
    stats = base / "data" / "1hour-stats" / "LAB Capture1"
    stats.mkdir(parents=True, exist_ok=True)
    (stats / "LAB-Capture1-trimmed-filtered-split-Plug-stats.csv").write_text(STATS)
    path = folder / "dataset.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def test_pms_files_manifest_loads(tmp_path: Path) -> None:
    manifest = load_manifest(pms_contribution(tmp_path, pms_good()))
    assert (manifest.kind, manifest.folder, manifest.macs, manifest.sites) == ("pms-files", None, None, [])
    assert pms_folders(tmp_path / "dataset.yaml", manifest) == (tmp_path / ".", None)
    # Without `kind` a manifest is a captures contribution.
    assert load_manifest(contribution(tmp_path / "captures", good())).kind == "captures"


def test_pms_files_folder_and_macs_elsewhere(tmp_path: Path) -> None:
    data = pms_good() | {"folder": "study", "macs": "study/macs"}
    manifest = load_manifest(pms_contribution(tmp_path, data, "study"))
    assert pms_folders(tmp_path / "dataset.yaml", manifest) == (tmp_path / "study", tmp_path / "study/macs")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (edit(lambda d: d.__setitem__("kind", "csv")), "kind: input should be 'captures' or 'pms-files'"),
        (
            edit(lambda d: d.__setitem__("sites", [])),
            "sites: not used by kind pms-files: sites come from the data file names",
        ),
        (edit(lambda d: d.__setitem__("folder", "gone")), "folder: folder not found"),
        (edit(lambda d: d.__setitem__("folder", "macs/LAB-MACs.txt")), "folder: not a folder"),
        (edit(lambda d: d.__setitem__("folder", "macs")), "folder: {tmp}/macs: no 1hour-stats, protocols"),
        (edit(lambda d: d.__setitem__("macs", "none")), "macs: folder not found"),
        (
            edit(lambda d: d.__setitem__("macs", "data")),
            "macs: {tmp}/data/LAB-MACs.txt: MAC map of site LAB not found",
        ),
        (
            edit(lambda d: d.__setitem__("pseudonymise", True)),
            "pseudonymise: not supported for kind pms-files",
        ),
        (edit(lambda d: d.pop("source")), "source: required field is missing"),
    ],
)
def test_pms_files_problem_names_the_field(tmp_path: Path, change, problem: str) -> None:
    path = pms_contribution(tmp_path, change(pms_good()))
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {problem.format(tmp=tmp_path)}"), message


def test_captures_fields_and_kinds_do_not_mix(tmp_path: Path) -> None:
    path = contribution(tmp_path, good() | {"folder": "."})
    with pytest.raises(ConfigError, match=r": folder: only used by kind pms-files$"):
        load_manifest(path)
    data = good()
    del data["sites"]
    with pytest.raises(ConfigError, match=r": sites: required field is missing$"):
        load_manifest(contribution(tmp_path, data))


def test_pms_files_malformed_mac_and_unknown_device_name_the_file(tmp_path: Path) -> None:
    path = pms_contribution(tmp_path, pms_good())
    macs = tmp_path / "macs" / "LAB-MACs.txt"
    macs.write_text("Plug,02:00:00:00:00:21\nCam,02:00:00:00:00\n")
    with pytest.raises(ConfigError) as info:
        load_manifest(path)
    assert str(info.value).startswith(f"{path}: macs: {macs}:2: malformed MAC '02:00:00:00:00'")
    macs.write_text("Cam,02:00:00:00:00:22\n")
    with pytest.raises(
        ConfigError, match=r": folder: .*Plug-stats\.csv: device 'Plug' is not in the MAC map"
    ):
        load_manifest(path)
