"""policy_digest determinism and the bounded bundle loader."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trustload.errors import UsageError
from trustload.policy import default_policy_dir, load_bundle, policy_digest
from trustload.policy.bundle import MAX_FILE_BYTES, MAX_FILES, parse_data_json


def make_bundle(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "main.rego").write_text("package registry.download\n\ndefault permit := false\n")
    (root / "sub" / "extra.rego").write_text(
        "package registry.download\n\nimport rego.v1\n\nlimit := 3\n"
    )
    (root / "data.json").write_text('{"tenants": ["A"]}')
    (root / "README.md").write_text("not part of the bundle")
    return root


def test_digest_is_independent_of_location_and_mtimes(tmp_path):
    a = make_bundle(tmp_path / "a")
    first = policy_digest(a)
    moved = tmp_path / "elsewhere" / "deeper" / "b"
    moved.parent.mkdir(parents=True)
    shutil.move(str(a), str(moved))
    for p in moved.rglob("*"):
        os.utime(p, (1_000_000, 1_000_000))
        p.chmod(0o700 if p.is_dir() else 0o600)
    assert policy_digest(moved) == first
    assert first.startswith("sha256:") and len(first) == 71


def test_one_byte_change_changes_digest(tmp_path):
    root = make_bundle(tmp_path / "b")
    before = policy_digest(root)
    target = root / "sub" / "extra.rego"
    data = bytearray(target.read_bytes())
    data[-2] = ord("4")
    target.write_bytes(bytes(data))
    assert policy_digest(root) != before


def test_rename_changes_digest_and_readme_does_not(tmp_path):
    root = make_bundle(tmp_path / "c")
    before = policy_digest(root)
    (root / "README.md").write_text("edited")
    (root / "notes.txt").write_text("new")
    assert policy_digest(root) == before
    (root / "sub" / "extra.rego").rename(root / "sub" / "other.rego")
    assert policy_digest(root) != before


def test_digest_matches_documented_shell_construction(tmp_path):
    """docs/policy.md: header line, then sha256sum lines sorted by path, hashed."""
    root = make_bundle(tmp_path / "d")
    script = (
        'set -e; cd "$1"; { echo trustload-policy-bundle-v1; '
        "find . -type f \\( -name '*.rego' -o -name data.json \\) | sed 's|^\\./||' "
        "| LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1"
    )
    out = subprocess.run(["sh", "-c", script, "sh", str(root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert policy_digest(root) == "sha256:" + out.stdout.strip()


def test_digest_manual_construction(tmp_path):
    root = tmp_path / "e"
    root.mkdir()
    (root / "z.rego").write_bytes(b"package z\n")
    (root / "a.rego").write_bytes(b"package a\n")
    listing = b"trustload-policy-bundle-v1\n"
    for name, content in (("a.rego", b"package a\n"), ("z.rego", b"package z\n")):
        listing += hashlib.sha256(content).hexdigest().encode() + b"  " + name.encode() + b"\n"
    assert policy_digest(root) == "sha256:" + hashlib.sha256(listing).hexdigest()


def test_default_bundle_loads():
    bundle = load_bundle(default_policy_dir())
    assert [f.path for f in bundle.files] == ["download.rego"]


@pytest.mark.parametrize(
    "setup",
    [
        "empty",
        "oversized",
        "non_utf8",
        "nested_data",
        "symlink",
        "symlink_dir",
        "bad_json",
        "dup_key",
        "json_list",
        "deep_json",
        "nan_json",
        "missing",
        "file_not_dir",
        "too_many",
    ],
)
def test_loader_refuses(tmp_path, setup):
    root = tmp_path / "p"
    root.mkdir()
    if setup != "empty":
        (root / "ok.rego").write_text("package registry.download\n")
    if setup == "oversized":
        (root / "big.rego").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    elif setup == "non_utf8":
        (root / "bad.rego").write_bytes(b"package x\n\xff\xfe\n")
    elif setup == "nested_data":
        (root / "sub").mkdir()
        (root / "sub" / "data.json").write_text("{}")
    elif setup == "symlink":
        (tmp_path / "outside.rego").write_text("package evil\n")
        (root / "link.rego").symlink_to(tmp_path / "outside.rego")
    elif setup == "symlink_dir":
        (tmp_path / "outside").mkdir()
        (root / "linkdir").symlink_to(tmp_path / "outside")
    elif setup == "bad_json":
        (root / "data.json").write_text("{not json")
    elif setup == "dup_key":
        (root / "data.json").write_text('{"a": 1, "a": 2}')
    elif setup == "json_list":
        (root / "data.json").write_text("[1, 2]")
    elif setup == "deep_json":
        (root / "data.json").write_text('{"a":' * 200 + "1" + "}" * 200)
    elif setup == "nan_json":  # the signed-evidence loader's rules hold for data.json too
        (root / "data.json").write_text('{"limit": NaN}')
    elif setup == "missing":
        root = tmp_path / "nope"
    elif setup == "file_not_dir":
        root = root / "ok.rego"
    elif setup == "too_many":
        for i in range(MAX_FILES + 1):
            (root / f"m{i}.rego").write_text(f"package m{i}\n")
    with pytest.raises(UsageError):
        load_bundle(root)


def test_fifo_named_rego_is_refused(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    (root / "ok.rego").write_text("package x\n")
    os.mkfifo(root / "pipe.rego")
    with pytest.raises(UsageError, match="special file"):
        load_bundle(root)


names = st.text(alphabet=string.ascii_lowercase + "_-", min_size=1, max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(names, st.binary(max_size=300), min_size=1, max_size=6),
    data=st.one_of(st.none(), st.binary(max_size=200)),
)
def test_loader_never_crashes_and_digest_is_a_function_of_content(tmp_path_factory, files, data):
    """Any bytes: the loader returns a bundle or raises UsageError, never anything else;
    two copies of the same content digest the same."""
    digests = []
    for copy in ("one", "two"):
        root = tmp_path_factory.mktemp(copy)
        for name, content in files.items():
            (root / f"{name}.rego").write_bytes(content)
        if data is not None:
            (root / "data.json").write_bytes(data)
        try:
            digests.append(policy_digest(root))
        except UsageError:
            digests.append("usage")
    assert digests[0] == digests[1]
    if digests[0] != "usage":
        assert digests[0].startswith("sha256:")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_data_json_parser_is_total(raw):
    try:
        doc = parse_data_json(raw)
    except UsageError:
        return
    assert isinstance(doc, dict)
    json.dumps(doc)
