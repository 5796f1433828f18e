"""``trustload fetch`` as UID 1000 where only DEST, the state/audit volume, TMPDIR and the
termination log are writable (the Kubernetes shape: read-only root filesystem, non-root,
emptyDirs); afterwards nothing new exists outside those places."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fetch.conftest import Fetcher, tree_files, write_gate_toml

UID = GID = 1000
ROOT = Path(__file__).resolve().parents[2]
# The venv's interpreter links into /root/.pyenv (0700): UID 1000 runs the system
# CPython of the same minor version over the venv's site-packages and src/ instead.
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
LAUNCH = (
    "import site, sys; site.addsitedir(sys.argv[1]); sys.path.insert(0, sys.argv[2]); "
    "sys.argv = ['trustload'] + sys.argv[3:]; "
    "from trustload.cli.main import main; main()"
)


def _argv(*args: str) -> list[str]:
    site_packages = next((ROOT / ".venv" / "lib").glob("python3.*/site-packages"))
    return [str(SYSTEM_PYTHON), "-c", LAUNCH, str(site_packages), str(ROOT / "src"), *args]


def _drop() -> None:
    os.setgroups([])
    os.setgid(GID)
    os.setuid(UID)


def _owned(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, UID, GID)
    os.chmod(path, mode)
    return path


@pytest.fixture
def sandbox() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to UID 1000")
    if not SYSTEM_PYTHON.exists():
        pytest.skip(f"no {SYSTEM_PYTHON} that UID 1000 may execute")
    root = Path(tempfile.mkdtemp(prefix="tl-nonroot-", dir="/tmp"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for d in dirnames:
                os.chmod(Path(dirpath) / d, 0o755)
        shutil.rmtree(root)


def _new_files_of_uid(roots: list[Path], since: float, skip: Path) -> list[str]:
    found = []
    for top in roots:
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            if here == skip or skip in here.parents:
                dirnames[:] = []
                continue
            for n in dirnames + filenames:
                try:
                    st = os.lstat(here / n)
                except OSError:
                    continue
                if st.st_uid == UID and st.st_mtime >= since:
                    found.append(str(here / n))
    return found


def test_fetch_as_uid_1000_writes_only_dest_and_configured_dirs(
    fetcher: Fetcher, sandbox: Path
) -> None:
    arena = fetcher.arena
    name = arena.name("nonroot")
    rec = arena.publish(name, "1", arena.model_dir({"m.onnx": os.urandom(9000), "d/x": b"x"}))
    config = write_gate_toml(arena, sandbox, portable=True)  # root-owned, world-readable
    _owned(sandbox / "var")  # the emptyDir for [gate].state_dir and audit_log
    dest = _owned(sandbox / "mnt" / "models", 0o2775)  # KServe's emptyDir (fsGroup)
    tmpdir = _owned(sandbox / "tmp")
    home = sandbox / "home"
    home.mkdir()  # root-owned: not writable
    term = sandbox / "termination-log"
    term.touch()
    os.chown(term, UID, GID)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "TMPDIR": str(tmpdir),
        "TRUSTLOAD_CONFIG": str(config),
        "TRUSTLOAD_TERMINATION_LOG": str(term),
    }
    since = time.time() - 1
    proc = subprocess.run(
        _argv("fetch", f"trustload://{name}@production", str(dest)),
        env=env,
        cwd=home,
        preexec_fn=_drop,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["decision"] == "permit"
    assert tree_files(dest) == {f.path: f.sha256 for f in rec.files}
    for p in dest.rglob("*"):
        st = os.lstat(p)
        assert st.st_uid == UID
        assert stat.S_IMODE(st.st_mode) == (0o555 if p.is_dir() else 0o444)
    assert os.listdir(tmpdir) == []
    assert sorted(os.listdir(sandbox / "var")) == ["audit.jsonl", "audit.jsonl.head", "state"]
    assert json.loads(term.read_text())["decision"] == "permit"
    # Nothing of UID 1000's appeared in the world-writable places or the checkout.
    roots = [Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), ROOT]
    assert _new_files_of_uid([r for r in roots if r.exists()], since, sandbox) == []
