"""spark-submit entry point: ingest captures into the bronze tables (same arguments as `iotlake ingest`).

spark-submit --packages io.delta:delta-spark_4.1_2.13:4.4.0 jobs/ingest_captures.py DATASET [FILES…] [options]
"""

import sys

from iotlake.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
