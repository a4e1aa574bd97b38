"""``enclave link run`` as a spark-submit job: link every ingested source on a Spark cluster.

    spark-submit --master MASTER --deploy-mode client \\
        --jars "$(python deploy/spark/link_job.py --print-jar)" \\
        --conf spark.pyspark.python=/opt/enclave/.venv/bin/python \\
        deploy/spark/link_job.py --config /etc/enclave/enclave.toml --model MODEL.json

The session comes from spark-submit (master, executors, memory); the job then runs ``enclave
link run --backend spark`` with the other arguments (``--config``, ``--model``, ``--settings``,
``--truth``, ``--quiet``), whose pipeline borrows that session (``enclave.linkage.backends``),
reads the identifiers from the linkage zone and writes the person index, model and report
there. Run it in client mode on the linkage host: the driver reads and writes the linkage
zone. See docs/linkage.md ("Spark at scale").
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enclave.cli import main as enclave_main
from enclave.linkage.zones import Zones
from enclave.settings import Settings

JAR_NAME = "scala-udf-similarity"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="link_job.py",
        description=__doc__.splitlines()[0],
        epilog="Other arguments go to `enclave link run --backend spark`.",
    )
    parser.add_argument("--config", type=Path, help="enclave settings TOML (or $ENCLAVE_CONFIG)")
    parser.add_argument(
        "--checkpoint-dir",
        help="where Splink breaks Spark lineage; on a cluster a shared path such as hdfs:///... "
        "(default: <data_dir>/linkage/work/spark-checkpoints)",
    )
    parser.add_argument(
        "--print-jar", action="store_true", help="print the path of Splink's jar for --jars"
    )
    return parser


def _fail(message: str) -> int:
    print(f"link_job: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args, linkage_args = _parser().parse_known_args(argv)
    from splink.backends.spark import similarity_jar_location

    if args.print_jar:
        print(similarity_jar_location())
        return 0
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("enclave-linkage").getOrCreate()
    try:
        if JAR_NAME not in spark.sparkContext.getConf().get("spark.jars", ""):
            return _fail(f"Splink's jar is missing: pass --jars {similarity_jar_location()}")
        spark.conf.set("spark.sql.session.timeZone", "UTC")  # dates compare as in DuckDB
        spark.sparkContext.setLogLevel("ERROR")
        return _link(spark, args, linkage_args)
    finally:
        spark.stop()


def _link(spark: Any, args: argparse.Namespace, linkage_args: list[str]) -> int:
    zones = Zones(Settings.load(config_file=args.config).data_dir)
    if not zones.linkage.is_dir():
        return _fail(f"no linkage zone in {zones.data_dir}: ingest deliveries first")
    run = ["link", "run", "--backend", "spark", *linkage_args]
    if args.config:
        run += ["--config", str(args.config)]
    if args.checkpoint_dir:
        spark.sparkContext.setCheckpointDir(args.checkpoint_dir)
        return enclave_main(run)
    # identifiers are spilled there: a private directory in the linkage zone, removed after
    work = zones.linkage / "work"
    work.mkdir(parents=True, exist_ok=True)
    checkpoints = Path(tempfile.mkdtemp(prefix="spark-checkpoints-", dir=work))
    try:
        spark.sparkContext.setCheckpointDir(str(checkpoints))
        return enclave_main(run)
    finally:
        shutil.rmtree(checkpoints, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
