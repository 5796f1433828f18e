"""``trustload sign`` (model-signing v1.0 bundle) and ``trustload attest`` (SLSA v1 DSSE)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from trustload.cli.options import ContainerDigestOpt, DatasetSnapshotOpt, GitShaOpt, SigningKeyOpt
from trustload.errors import UsageError


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag}: not an RFC 3339 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        raise UsageError(f"{flag}: the timestamp needs a time zone (e.g. Z): {text!r}")
    return moment


def _model_path(path: Path) -> Path:
    if path.is_symlink():
        raise UsageError(f"model path is a symlink, refused: {path}")
    if not path.exists():
        raise UsageError(f"no such model file or directory: {path}")
    return path


def register(app: typer.Typer) -> None:
    @app.command("sign")
    def sign(
        path: Annotated[Path, typer.Argument(help="Model file or directory.")],
        key: SigningKeyOpt,
        out: Annotated[
            Path | None, typer.Option("--out", help="Where to write the bundle.")
        ] = None,
        shard_size: Annotated[
            int | None,
            typer.Option(
                "--shard-size",
                help="Sign a single file in model-signing's shard mode with shards of this "
                "many bytes (default: files mode, one whole-file SHA-256, which a gate "
                "computes while downloading).",
            ),
        ] = None,
    ) -> None:
        """Sign a model in the OpenSSF model-signing v1.0 format (Sigstore bundle, DSSE)."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.signing import sign_model

        target = sign_model(
            _model_path(path), key, out, password=key_password_from_env(), shard_size=shard_size
        )
        typer.echo(str(target))

    @app.command("attest")
    def attest(
        path: Annotated[Path, typer.Argument(help="Model file or directory.")],
        key: SigningKeyOpt,
        git_sha: GitShaOpt,
        container_digest: ContainerDigestOpt,
        dataset_snapshot: DatasetSnapshotOpt,
        not_before: Annotated[str | None, typer.Option("--not-before", help="RFC 3339.")] = None,
        not_after: Annotated[str | None, typer.Option("--not-after", help="RFC 3339.")] = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Where to write the envelope.")
        ] = None,
    ) -> None:
        """Write a DSSE-signed in-toto statement with SLSA provenance v1 for the model."""
        from trustload.crypto.keys import key_password_from_env
        from trustload.signing import attest as do_attest

        target = do_attest(
            _model_path(path),
            key,
            git_sha=git_sha,
            container_digest=container_digest,
            dataset_snapshot=dataset_snapshot,
            not_before=_when(not_before, "--not-before"),
            not_after=_when(not_after, "--not-after"),
            out=out,
            password=key_password_from_env(),
        )
        typer.echo(str(target))
