"""Fetch Java dependencies from Maven Central once and cache them.

Maven resolves the transitive closure for us; we only write a throwaway POM listing what we want
and copy the resolved runtime jars into a versioned cache directory. A marker file makes a
completed fetch permanent, so later starts work without network.
"""

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from emostream.common.errors import StackError

log = logging.getLogger(__name__)

_COMPLETE = ".complete"

Coordinate = tuple[str, str, str]  # group, artifact, version

# Kafka's broker declares slf4j 1.x; log4j's slf4j2 binding needs the 2.x API beside it.
_LOG4J = "2.24.3"
_BROKER_LOGGING: list[Coordinate] = [
    ("org.apache.logging.log4j", "log4j-core", _LOG4J),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", _LOG4J),
    ("org.slf4j", "slf4j-api", "2.0.17"),
]

# pyspark already ships Spark, Scala and the compression codecs; only these are missing.
_SPARK_KAFKA_ARTIFACTS = (
    "spark-sql-kafka-0-10_2.13",
    "spark-token-provider-kafka-0-10_2.13",
    "kafka-clients",
    "commons-pool2",
)


def _pom(deps: list[Coordinate]) -> str:
    body = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local.emostream</groupId><artifactId>jars</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{body}</dependencies></project>"
    )


def _fetch(deps: list[Coordinate], target: Path, include: tuple[str, ...] = ()) -> Path:
    if (target / _COMPLETE).exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed once to fetch jars: apt-get install -y maven")
    log.info("fetching jars from Maven Central", extra={"target": str(target)})
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_pom(deps))
        cmd = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={target.resolve()}", "-DincludeScope=runtime",
        ]  # fmt: skip
        if include:
            cmd.append("-DincludeArtifactIds=" + ",".join(include))
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        raise StackError(f"Maven could not fetch {deps}:\n{result.stdout}{result.stderr}")
    (target / _COMPLETE).touch()
    return target


def kafka_broker_jars(cache_dir: Path, version: str) -> Path:
    """The directory holding Apache Kafka ``version``'s broker and its runtime dependencies."""
    deps = [("org.apache.kafka", "kafka_2.13", version), *_BROKER_LOGGING]
    return _fetch(deps, cache_dir / f"kafka-{version}")


def spark_kafka_jars(cache_dir: Path, spark_version: str) -> list[Path]:
    """The Spark Kafka connector jars matching ``spark_version`` (pyspark's own version)."""
    deps = [("org.apache.spark", "spark-sql-kafka-0-10_2.13", spark_version)]
    target = _fetch(deps, cache_dir / f"spark-kafka-{spark_version}", _SPARK_KAFKA_ARTIFACTS)
    return sorted(target.glob("*.jar"))
