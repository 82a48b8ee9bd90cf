"""SparkSession factory: Delta extensions, quiet logs, local default, and Delta jar resolution.

Jars are resolved the standard way (`spark.jars.packages`, as `configure_spark_with_delta_pip` does, through
Ivy and Maven Central). On a machine where Ivy cannot reach Maven Central, `python -m iotlake.spark jars`
falls back to `mvn dependency:copy` into a local jar cache, which later sessions load with `spark.jars`.
Under `spark-submit` the JVM already runs: jars come from `--packages`/`--jars` and only SQL settings apply.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from iotlake.config import Config, load_config

log = logging.getLogger(__name__)

SCALA_BINARY = "2.13"
SPARK_LINE = "4.1"
DELTA_ARTIFACTS = (f"io.delta:delta-spark_{SPARK_LINE}_{SCALA_BINARY}", "io.delta:delta-storage")

# Settings every iotlake session needs, whatever conf/spark-defaults.conf says.
REQUIRED_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Delta's SQL parser drops named parameter markers on Spark 4.1 (delta-io/delta#7640); the legacy
    # substitution binds them before parsing, so `spark.sql(text, args=…)` works.
    "spark.sql.legacy.parameterSubstitution.constantsOnly": "true",
    "spark.sql.session.timeZone": "UTC",
}


def delta_version() -> str:
    """The delta-spark version installed with pip; the jars must be the same version."""
    from importlib.metadata import version

    return version("delta-spark")


def delta_coordinates() -> list[str]:
    """Maven coordinates of the Delta jars that match the installed delta-spark."""
    return [f"{artifact}:{delta_version()}" for artifact in DELTA_ARTIFACTS]


def read_spark_defaults(path: Path) -> dict[str, str]:
    """Parse a `spark-defaults.conf` file (`key value` lines, `#` comments)."""
    conf: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition(" ")
                conf[key.strip()] = value.strip()
    return conf


def local_jars(config: Config) -> list[str]:
    """Delta jars in the local jar cache (filled by the mvn fallback), matching the installed version."""
    cache = Path(config.settings.jar_cache).expanduser()
    version = delta_version()
    jars = [cache / f"{a.split(':')[1]}-{version}.jar" for a in DELTA_ARTIFACTS]
    return [str(j) for j in jars] if all(j.is_file() for j in jars) else []


def under_spark_submit() -> bool:
    """True when a JVM launched this Python process (spark-submit, pyspark shell)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(
    config: Config | None = None,
    app_name: str = "iotlake",
    master: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """The active session if there is one, else a new Delta-enabled session configured from `conf/`."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    config = config or load_config()
    builder = SparkSession.builder.appName(app_name)
    conf = read_spark_defaults(config.conf_dir / "spark-defaults.conf")
    conf.update(REQUIRED_CONF)
    conf.update(extra_conf or {})
    if not under_spark_submit():
        # Python workers must run the interpreter that has iotlake installed (the venv), not the PATH one.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(master or config.settings.spark_master)
        # The catalog's database folder lives in the lake, not in whatever directory the job started from.
        conf.setdefault("spark.sql.warehouse.dir", str(Path(config.lake_root, "_catalog").resolve()))
        log4j = config.conf_dir / "log4j2.properties"
        if log4j.is_file():
            conf.setdefault("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j.resolve()}")
        jars = local_jars(config) if config.settings.delta_jars != "packages" else []
        if jars:
            conf["spark.jars"] = ",".join(jars)
        elif config.settings.delta_jars == "local":
            raise RuntimeError(
                "delta_jars: local, but the jar cache is empty: run `python -m iotlake.spark jars`"
            )
        else:
            conf["spark.jars.packages"] = ",".join(delta_coordinates())
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(conf.get("iotlake.logLevel", "ERROR"))
    return spark


def resolve_jars(config: Config | None = None) -> str:
    """Make the Delta jars available: Ivy (`spark.jars.packages`) first, else `mvn dependency:copy`."""
    config = config or load_config()
    if local_jars(config):
        return "local jar cache"
    probe = (
        "from iotlake.spark import get_spark; s = get_spark(master='local[1]'); "
        "s.range(1).write.format('delta').mode('overwrite').save(__import__('tempfile').mkdtemp() + '/t')"
    )
    env = dict(os.environ, IOTLAKE_CONF=str(config.conf_dir))
    try:
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode == 0:
            return "ivy (spark.jars.packages)"
        log.warning("Ivy could not resolve the Delta jars; falling back to mvn: %s", done.stderr[-500:])
    except subprocess.TimeoutExpired:
        log.warning("Ivy resolution timed out; falling back to mvn")
    cache = Path(config.settings.jar_cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    for coordinate in delta_coordinates():
        subprocess.run(
            ["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={cache}"],
            check=True,
        )
    if not local_jars(config):
        raise RuntimeError(f"mvn did not place the Delta jars in {cache}")
    return f"mvn fallback ({cache})"


if __name__ == "__main__":
    if sys.argv[1:] == ["jars"]:
        print(f"Delta jars: {resolve_jars()}")
    else:
        sys.exit("usage: python -m iotlake.spark jars")
