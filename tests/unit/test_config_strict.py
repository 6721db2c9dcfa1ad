"""Strict types: a string is never taken for a number, a boolean or a list (#14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.vault import write_config
from photovault.config import ConfigError, load

GOOD = """
state_dir = "state"
[[shares]]
name = "family"
path = "photos"
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "photos").mkdir(exist_ok=True)
    p = tmp_path / "vaultd.toml"
    p.write_text(GOOD + text)
    return p


def problem(p: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        load(p, environ=environ or {})
    return str(exc.value)


def test_a_quoted_integer_is_refused_naming_file_section_key_and_reason(tmp_path: Path) -> None:
    p = write(tmp_path, '[throttle]\nbatch_size = "8"\n')
    msg = problem(p)
    assert msg.startswith(f"{p}: invalid configuration")
    assert (
        '[throttle] batch_size: expected an integer, got the string "8" (write it without quotes)'
        in msg
    )


def test_a_string_for_a_boolean_is_refused(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[sidecars]\nenabled = "yes"\n'))
    assert '[sidecars] enabled: expected true or false, got the string "yes"' in msg


def test_a_quoted_number_for_a_float_is_refused(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[ingest]\nsettle_seconds = "2.5"\n'))
    assert '[ingest] settle_seconds: expected a number, got the string "2.5"' in msg


def test_a_string_for_a_list_is_refused(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[analyzers]\nenabled = "metadata"\n'))
    assert '[analyzers] enabled: expected a list, got the string "metadata"' in msg


def test_a_float_is_refused_where_an_integer_is_expected(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, "[throttle]\nbatch_size = 8.0\n"))
    assert "[throttle] batch_size: expected an integer, got the number 8.0" in msg


def test_a_boolean_is_refused_where_an_integer_is_expected(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, "[ingest]\nmax_attempts = true\n"))
    assert "[ingest] max_attempts: expected an integer, got true" in msg


def test_the_faces_section_is_strict_too(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[faces]\nimage_side = "1024"\n'))
    assert '[faces] image_side: expected an integer, got the string "1024"' in msg


def test_a_number_in_a_list_of_names_is_refused_naming_the_item(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[analyzers]\nenabled = ["metadata", 5]\n'))
    assert "[analyzers] enabled item 2: expected a string, got the integer 5" in msg


def test_a_number_for_a_path_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "vaultd.toml"
    p.write_text("state_dir = 5\n")
    assert "state_dir: expected a path (a string), got the integer 5" in problem(p)


def test_a_quoted_boolean_in_a_share_names_the_share_table(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[[shares]]\nname = "b"\npath = "photos"\nread_only = "true"\n'))
    assert '[[shares]] #2 read_only: expected true or false, got the string "true"' in msg


def test_every_wrong_type_is_reported_at_once(tmp_path: Path) -> None:
    msg = problem(write(tmp_path, '[throttle]\nbatch_size = "8"\n[sidecars]\nenabled = "yes"\n'))
    assert "[throttle] batch_size:" in msg and "[sidecars] enabled:" in msg


def test_an_integer_is_accepted_where_a_float_is_expected(tmp_path: Path) -> None:
    s = load(
        write(tmp_path, "[ingest]\nsettle_seconds = 2\n[decode]\nmax_megapixels = 50\n"),
        environ={},
    )
    assert s.ingest.settle_seconds == 2.0 and isinstance(s.ingest.settle_seconds, float)
    assert s.decode.max_megapixels == 50.0


def test_environment_overrides_are_still_read_as_typed_toml_values(tmp_path: Path) -> None:
    env = {
        "VAULT_THROTTLE__BATCH_SIZE": "8",
        "VAULT_INGEST__SETTLE_SECONDS": "2",
        "VAULT_SIDECARS__ENABLED": "false",
        "VAULT_STATE_DIR": str(tmp_path / "elsewhere"),
    }
    s = load(write(tmp_path, ""), environ=env)
    assert s.throttle.batch_size == 8
    assert s.ingest.settle_seconds == 2.0
    assert s.sidecars.enabled is False
    assert s.state_dir == tmp_path / "elsewhere"


def test_an_environment_string_for_a_boolean_is_refused_naming_the_variable(
    tmp_path: Path,
) -> None:
    msg = problem(write(tmp_path, ""), {"VAULT_SIDECARS__ENABLED": "yes"})
    assert (
        "[sidecars] enabled (from environment variable VAULT_SIDECARS__ENABLED): "
        'expected true or false, got the string "yes"'
    ) in msg


def test_the_test_suite_config_is_valid_under_strict_types(tmp_path: Path) -> None:
    s = load(write_config(tmp_path, settle=1, extra="[faces]\nmin_cluster_faces = 2\n"), {})
    assert s.ingest.settle_seconds == 1.0
    assert s.throttle.batch_size == 8
