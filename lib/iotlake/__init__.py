"""iotlake: a Delta lakehouse for smart-home IoT network-traffic research."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("iotlake")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+src"
