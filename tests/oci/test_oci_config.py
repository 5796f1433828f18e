"""``[[oci.registries]]``: strict parsing, paths relative to the file, typos refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from trustload.config import load_client_config, load_oci_config
from trustload.errors import UsageError


def test_oci_section_parsed_with_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "gate.toml"
    path.write_text(
        '[registry]\nurl = "https://127.0.0.1:8443"\nca = "ca.pem"\n'
        'client_cert = "c.pem"\nclient_key = "c.key"\n'
        '[[oci.registries]]\nhost = "Registry.Corp:5443"\nca = "pki/oci-ca.pem"\n'
        'username = "gate"\npassword_file = "oci-password"\n'
    )
    (entry,) = load_oci_config(path).registries
    assert entry.host == "registry.corp:5443"
    assert entry.ca == tmp_path / "pki" / "oci-ca.pem"
    assert entry.password_file == tmp_path / "oci-password"
    assert load_client_config(path).oci.registries[0].host == "registry.corp:5443"


def test_oci_only_file_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "oci.toml"
    path.write_text('[[oci.registries]]\nhost = "127.0.0.1:5000"\nca = "/abs/ca.pem"\n')
    assert load_oci_config(path).registries[0].ca == Path("/abs/ca.pem")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_oci_config(empty).registries == []


@pytest.mark.parametrize(
    "text",
    [
        '[[oci.registry]]\nhost = "h"\nca = "c"\n',  # typo in the table name
        '[[oci.registries]]\nhost = "h"\nca = "c"\npasword_file = "p"\n',  # typo in a key
        '[[oci.registries]]\nhost = "https://h"\nca = "c"\n',  # a URL, not host[:port]
        '[[oci.registries]]\nhost = "h/repo"\nca = "c"\n',
        '[[oci.registries]]\nhost = "h"\n',  # no CA: https only with a pinned CA
        '[[ocis.registries]]\nhost = "h"\nca = "c"\n',  # unknown top-level table
    ],
)
def test_bad_oci_config_is_usage_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError):
        load_oci_config(path)
