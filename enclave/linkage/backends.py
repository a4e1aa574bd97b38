"""Where Splink runs: an in-process DuckDB (the default) or Spark (scale-out): a local Spark
started here, or the session of a ``spark-submit`` job on a cluster when one is active.

Each backend is opened as a context manager that owns its engine and releases it (closes the
DuckDB connection, stops the Spark session) however the linkage ends.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from enclave.linkage.errors import LinkageError
from enclave.linkage.settings import LinkageSettings


def java_available() -> bool:
    """Whether a Java runtime answers ``java -version`` (Spark needs one)."""
    java = shutil.which("java")
    if java is None:
        return False
    try:
        done = subprocess.run([java, "-version"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@contextmanager
def open_backend(settings: LinkageSettings, work_dir: Path) -> Iterator[Any]:
    """A Splink database API for ``settings.backend``, with ``settings.threads`` threads and
    scratch space in a new directory under ``work_dir``, removed afterwards (DuckDB spills
    identifiers there).

    Raises:
        LinkageError: Spark was asked for but pyspark or Java is missing.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="linkage-", dir=work_dir))
    try:
        if settings.backend == "spark":
            with _spark(settings, scratch) as api:
                yield api
        else:
            with _duckdb(settings, scratch) as api:
                yield api
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def _duckdb(settings: LinkageSettings, work_dir: Path) -> Iterator[Any]:
    from splink import DuckDBAPI

    config: dict[str, Any] = {
        "threads": settings.threads,
        "temp_directory": str(work_dir / "duckdb-spill"),
        "preserve_insertion_order": False,
    }
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
    connection = duckdb.connect(":memory:", config=config)
    try:
        yield DuckDBAPI(connection)
    finally:
        connection.close()


@contextmanager
def _spark(settings: LinkageSettings, work_dir: Path) -> Iterator[Any]:
    if not java_available():
        raise LinkageError("the Spark backend needs a Java runtime (java -version failed)")
    try:
        from pyspark.sql import SparkSession
        from splink import SparkAPI
        from splink.internals.spark.jar_location import similarity_jar_location
    except ImportError:
        raise LinkageError("the Spark backend needs pyspark: pip install pyspark") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        # A spark-submit job (deploy/spark/link_job.py) made this session: its master, jars and
        # checkpoint directory are the cluster's, and the job stops it when it ends.
        yield SparkAPI(spark_session=active)  # type: ignore[no-untyped-call]
        return
    partitions = str(max(2, 2 * settings.threads))
    spark = (
        SparkSession.builder.master(f"local[{settings.threads}]")
        .appName("enclave-linkage")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", partitions)
        .config("spark.default.parallelism", partitions)
        .config("spark.driver.memory", settings.memory_limit or "2g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.local.dir", str(work_dir / "spark-local"))
        .config("spark.sql.warehouse.dir", str(work_dir / "spark-warehouse"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(work_dir / "spark-checkpoints"))
    try:
        yield SparkAPI(spark_session=spark)  # type: ignore[no-untyped-call]
    finally:
        spark.stop()
