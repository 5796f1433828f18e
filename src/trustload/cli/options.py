"""Options several signing commands share, defined once (same flag, same help)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SigningKeyOpt = Annotated[Path, typer.Option("--key", help="Private key (PEM).")]
GitShaOpt = Annotated[str, typer.Option("--git-sha", help="Source commit.")]
ContainerDigestOpt = Annotated[
    str, typer.Option("--container-digest", help="Serving image digest.")
]
DatasetSnapshotOpt = Annotated[str, typer.Option("--dataset-snapshot", help="Dataset snapshot id.")]
