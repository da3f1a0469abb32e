"""The Apache Kafka broker's runtime jars, fetched once from Maven Central with Maven and cached.

The jar folder lives outside the clone (``~/.cache/streamrec/kafka-<version>/jars``, or
``$STREAMREC_KAFKA_JARS_DIR``) so a fresh checkout or a CI job with a cached home does not fetch again.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

KAFKA_VERSION = "4.1.1"
JARS_DIR_ENV = "STREAMREC_KAFKA_JARS_DIR"
INSTALL_HINT = "apt-get install openjdk-17-jre-headless maven"
POM = Path(__file__).with_name("pom.xml")

# Fully qualified so Maven neither resolves the `dependency:` prefix (which needs remote metadata)
# nor falls back to the 2013 plugin version Maven 3.8 picks by default.
_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
_MARKER_JAR = f"kafka_2.13-{KAFKA_VERSION}.jar"
_NETWORK_FAILURE = re.compile(
    r"could not transfer|could not be resolved|could not resolve|transfer failed|no plugin found"
    r"|unknownhost|name or service not known|connection refused|timed out|network is unreachable",
    re.IGNORECASE,
)


class KafkaSetupError(RuntimeError):
    """Something needed to run the local broker is missing or failed; the message says what to do."""


def print_progress(message: str) -> None:
    """The default progress reporter: one line on stderr, so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def jars_dir() -> Path:
    """Where the jars are cached: ``$STREAMREC_KAFKA_JARS_DIR`` or the per-user cache."""
    override = os.environ.get(JARS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "streamrec" / f"kafka-{KAFKA_VERSION}" / "jars"


def require_tool(name: str) -> str:
    """Return the path of the executable ``name`` or explain how to install it."""
    path = shutil.which(name)
    if path is None:
        raise KafkaSetupError(
            f"`{name}` was not found on PATH; the local Kafka broker needs Java 17+ and Maven: {INSTALL_HINT}"
        )
    return path


def ensure_kafka_jars(progress: Callable[[str], None] = print_progress) -> Path:
    """Return a folder holding every runtime jar of the Kafka broker, fetching it the first time.

    Maven copies the jars into a temporary sibling folder that is then renamed into place, so an
    interrupted fetch never leaves a half-filled cache and two concurrent first runs do not clash.
    """
    target = jars_dir()
    if (target / _MARKER_JAR).is_file():
        return target
    require_tool("java")
    mvn = require_tool("mvn")
    _remove_empty_dir(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    progress(f"fetching Kafka {KAFKA_VERSION} jars from Maven Central (first run only)…")
    staging = Path(tempfile.mkdtemp(prefix=".jars-", dir=target.parent))
    try:
        _copy_dependencies(mvn, staging)
        os.rename(staging, target)
    except OSError:
        if not (target / _MARKER_JAR).is_file():  # otherwise a concurrent run got there first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _remove_empty_dir(path: Path) -> None:
    """Clear the way for the rename: an empty folder (e.g. a fresh CI cache) is fine, anything else is not."""
    if not path.exists():
        return
    try:
        path.rmdir()
    except OSError:
        raise KafkaSetupError(
            f"{path} exists but does not hold the Kafka {KAFKA_VERSION} jars; remove it and try again"
        ) from None


def _copy_dependencies(mvn: str, output_dir: Path) -> None:
    command = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        _COPY_GOAL,
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output_dir}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    detail = _first_error_line(output)
    if _NETWORK_FAILURE.search(output):
        raise KafkaSetupError(
            f"cannot download Kafka {KAFKA_VERSION} from Maven Central: is it reachable from here "
            f"(network, proxy or a mirror in ~/.m2/settings.xml)? Maven said: {detail}"
        )
    raise KafkaSetupError(f"Maven failed to fetch the Kafka {KAFKA_VERSION} jars: {detail}")


def _first_error_line(output: str, limit: int = 400) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("[ERROR]").strip() for line in lines if line.startswith("[ERROR]")]
    first = next((line for line in errors if line), lines[-1] if lines else "no output")
    return first[:limit]
