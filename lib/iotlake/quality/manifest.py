"""The manifest of a contributed dataset: `dataset.yaml` at the top of the contributed folder.

```yaml
dataset: lab2024                  # the dataset's name in the lake
contributor: Jane Doe <jane@example.org>
licence: CC-BY-4.0
source: https://example.org/lab2024
pseudonymise: true                # optional: MACs and local IPs become keyed HMAC values (needs --key-file)
sites:
  - name: home1
    macs: home1/macs.csv          # MAC map, relative to the folder
    site_config: home1/site.yaml  # optional
    captures:
      - file: home1/idle.pcap
        start: 1700000000         # optional capture window, epoch seconds
        end: 1700003600
        labels: {activity: idle}  # optional
```

A dataset of the earlier Passive-Mode-Study tool's per-capture data files (hourly `*-stats.csv`,
`*-protocols*.csv`, `*-endpoints.csv`; imports/pms.py) says `kind: pms-files` instead of listing sites:

```yaml
dataset: lab2023
kind: pms-files                   # default: captures
contributor: Jane Doe <jane@example.org>
licence: CC-BY-4.0
source: https://example.org/lab2023
folder: pms                       # optional: holds data/{1hour-stats,protocols,endpoints}/ or those
                                  # folders; default the manifest's folder
macs: pms/macs                    # optional: the <site>-MACs.txt maps; default <folder>/macs
```

Sites, captures and devices come from the file names; every site a file names needs its MAC map, and every
device its entry there. `sites` is only for captures, `folder` and `macs` only for pms-files.

Paths are relative to the folder that holds the manifest. Every problem becomes one line naming the manifest
and the field path, e.g. `contrib/dataset.yaml: sites[0].captures[1].file: file not found`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from iotlake.config import Device, SiteConfig, load_macs, load_site, read_yaml
from iotlake.errors import ConfigError, IotlakeError
from iotlake.names import check_name, safe_name

MANIFEST_NAME = "dataset.yaml"
CAPTURE_SUFFIXES = (".gz", ".pcapng", ".pcap", ".cap")
CAPTURES = "captures"
PMS_FILES = "pms-files"


def _base(info: ValidationInfo) -> Path:
    """The folder relative paths resolve against (passed as validation context)."""
    context = info.context or {}
    return Path(context.get("base", "."))


def _existing_file(value: str, info: ValidationInfo) -> str:
    path = _base(info) / value
    if not path.exists():
        raise ValueError("file not found")
    if not path.is_file():
        raise ValueError("not a file")
    return value


def _name(kind: str, value: str) -> str:
    try:
        return check_name(kind, value)
    except IotlakeError as exc:
        raise ValueError(exc.problem) from None


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _seconds(value: float) -> str:
    """Epoch seconds as written: 1700000000, or 1700000000.25."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


class CaptureEntry(BaseModel):
    """One capture file of a site, with its optional capture window and labels."""

    model_config = ConfigDict(extra="forbid")

    file: str
    start: float | None = Field(default=None, ge=0)
    end: float | None = Field(default=None, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("file")
    @classmethod
    def _file(cls, value: str, info: ValidationInfo) -> str:
        return _existing_file(value, info)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if isinstance(item, dict | list) or item is None:
                    raise ValueError(f"label {key!r} must be a single value")
                out[str(key)] = str(item)
            return out
        return value

    @model_validator(mode="after")
    def _window(self) -> CaptureEntry:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end ({_seconds(self.end)}) is before start ({_seconds(self.start)})")
        return self

    @property
    def name(self) -> str:
        """The capture's name in the lake: the file name without its extension, made safe."""
        stem = Path(self.file).name
        for suffix in CAPTURE_SUFFIXES:
            stem = stem.removesuffix(suffix)
        return safe_name(stem)


class SiteEntry(BaseModel):
    """One site of the contribution: its MAC map, optional site config and captures."""

    model_config = ConfigDict(extra="forbid")

    name: str
    macs: str
    site_config: str | None = None
    captures: list[CaptureEntry] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _site_name(cls, value: str) -> str:
        return _name("site", value)

    @field_validator("macs")
    @classmethod
    def _macs(cls, value: str, info: ValidationInfo) -> str:
        _existing_file(value, info)
        try:
            load_macs(_base(info) / value)
        except IotlakeError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("site_config")
    @classmethod
    def _site_config(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _existing_file(value, info)
        try:
            load_site(_base(info) / value)
        except IotlakeError as exc:
            raise ValueError(str(exc)) from None
        return value


class Manifest(BaseModel):
    """A contributed dataset: who gives it under which licence, and its sites and captures."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    kind: Literal["captures", "pms-files"] = CAPTURES
    contributor: str
    licence: str
    source: str
    sites: list[SiteEntry] = Field(default_factory=list, min_length=1)  # kind captures: required
    folder: str | None = None  # kind pms-files: the data files' folder (default: the manifest's)
    macs: str | None = None  # kind pms-files: the MAC maps' folder (default: <folder>/macs)
    pseudonymise: bool = False  # replace MACs and local IPs by keyed pseudonyms (quality/pseudonymise.py)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        return _name("dataset", value)

    @field_validator("contributor", "licence", "source")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        return _text(value)


class _Problem(Exception):
    """A problem at a field path, found after pydantic's own checks."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _check_names(manifest: Manifest) -> None:
    """Site names are unique; capture names (from the file names) are unique within a site."""
    sites: dict[str, int] = {}
    for s, site in enumerate(manifest.sites):
        if site.name in sites:
            raise _Problem(
                ("sites", s, "name"), f"duplicate site {site.name!r} (also sites[{sites[site.name]}])"
            )
        sites[site.name] = s
        captures: dict[str, int] = {}
        for c, capture in enumerate(site.captures):
            if capture.name in captures:
                other = captures[capture.name]
                raise _Problem(
                    ("sites", s, "captures", c, "file"),
                    f"capture name {capture.name!r} is also the name of sites[{s}].captures[{other}]",
                )
            captures[capture.name] = c


def _folder(base: Path, value: str, loc: tuple[str | int, ...]) -> Path:
    """`base / value`, which must be an existing folder (a problem at `loc` otherwise)."""
    path = base / value
    if not path.exists():
        raise _Problem(loc, "folder not found")
    if not path.is_dir():
        raise _Problem(loc, "not a folder")
    return path


def _check_fields_of_kind(data: dict[str, Any]) -> None:
    """Fields of the other kind are refused before any field is validated (pms-files never reads `sites`)."""
    kind = data.get("kind", CAPTURES)
    if kind == PMS_FILES and "sites" in data:
        raise _Problem(("sites",), f"not used by kind {PMS_FILES}: sites come from the data file names")
    if kind == CAPTURES:
        for name in ("folder", "macs"):
            if name in data:
                raise _Problem((name,), f"only used by kind {PMS_FILES}")


def _check_kind(manifest: Manifest, base: Path) -> None:
    """Captures need sites; a pms-files folder must plan as an import (its files and MAC maps)."""
    if manifest.kind == CAPTURES:
        if "sites" not in manifest.model_fields_set:
            raise _Problem(("sites",), "required field is missing")
        return
    from iotlake.imports import pms

    if manifest.pseudonymise:
        raise _Problem(("pseudonymise",), f"not supported for kind {PMS_FILES}")
    folder = _folder(base, manifest.folder or ".", ("folder",))
    macs = _folder(base, manifest.macs, ("macs",)) if manifest.macs else pms.default_macs_dir(folder)
    try:
        files, _ = pms.find_files(folder)
    except IotlakeError as exc:
        raise _Problem(("folder",), str(exc)) from None
    try:
        maps = pms.mac_map_files(macs, (f.site for f in files))
        devices = {site: load_macs(path) for site, path in maps.items()}
    except IotlakeError as exc:
        raise _Problem(("macs",), str(exc)) from None
    try:
        pms.resolve_devices(pms.ImportPlan(folder, files, devices))
    except IotlakeError as exc:
        raise _Problem(("folder",), str(exc)) from None


def field_path(loc: tuple[str | int, ...]) -> str:
    """`sites[0].captures[1].file` for pydantic's ('sites', 0, 'captures', 1, 'file')."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _message(error: dict[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return message[:1].lower() + message[1:] if not message[1:2].isupper() else message


def manifest_path(path: Path) -> Path:
    """The manifest of a contribution given as its folder or as the manifest file itself."""
    path = Path(path)
    return path / MANIFEST_NAME if path.is_dir() else path


def load_manifest(path: Path) -> Manifest:
    """Read and validate a contribution's manifest (a folder or its `dataset.yaml`), or raise one line."""
    path = manifest_path(path)
    if not path.is_file():
        raise ConfigError(path, "manifest not found (a contribution needs a dataset.yaml)")
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "expected a mapping with dataset, contributor, licence, source and sites")
    try:
        _check_fields_of_kind(data)
        manifest = Manifest.model_validate(data, context={"base": path.parent})
        _check_names(manifest)
        _check_kind(manifest, path.parent)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(path, f"{field_path(errors[0]['loc'])}: {_message(errors[0])}{more}") from None
    except _Problem as problem:
        raise ConfigError(path, f"{field_path(problem.loc)}: {problem.message}") from None
    return manifest


def site_devices(manifest_file: Path, site: SiteEntry) -> tuple[list[Device], SiteConfig]:
    """A site's MAC map and site config, read relative to the manifest's folder."""
    base = manifest_path(manifest_file).parent
    config = load_site(base / site.site_config if site.site_config else None)
    return load_macs(base / site.macs), config


def capture_file(manifest_file: Path, capture: CaptureEntry) -> Path:
    """A capture's file, resolved relative to the manifest's folder."""
    return manifest_path(manifest_file).parent / capture.file


def pms_folders(manifest_file: Path, manifest: Manifest) -> tuple[Path, Path | None]:
    """A pms-files contribution's data folder and MAC folder (None: the import's default), resolved."""
    base = manifest_path(manifest_file).parent
    return base / (manifest.folder or "."), base / manifest.macs if manifest.macs else None
