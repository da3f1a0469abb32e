"""Training models for tests the way users do: through ``streamrec train``."""

import subprocess
import sys
from pathlib import Path


def train_with_cli(data: Path, out: Path, *options: str) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer.cli",
            "train",
            "--data",
            str(data),
            "--preset",
            "rsc15",
            "--quiet",
            "--out",
            str(out),
            *options,
        ],
        check=True,
    )
    return out
