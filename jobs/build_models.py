"""spark-submit entry point: rebuild the SQL models (same arguments as `iotlake build`).

spark-submit --packages io.delta:delta-spark_4.1_2.13:4.4.0 jobs/build_models.py [--dataset NAME] [options]
"""

import sys

from iotlake.cli import main

if __name__ == "__main__":
    main(["build", *sys.argv[1:]])
