"""spark-submit entry point: rebuild only the volume models (same options as `iotlake build`).

spark-submit --packages io.delta:delta-spark_4.1_2.13:4.4.0 jobs/build_volumes.py [--dataset NAME] [--interval S]
"""

import sys

from iotlake.cli import main

VOLUME_MODELS = ("device_packets", "interval_volumes", "volume_stats", "traffic_distribution")

if __name__ == "__main__":
    main(["build", *[arg for model in VOLUME_MODELS for arg in ("--model", model)], *sys.argv[1:]])
