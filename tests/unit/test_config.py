from __future__ import annotations

from pathlib import Path

import pytest

from photovault.config import ConfigError, apply_env_overrides, load

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "photos").mkdir(exist_ok=True)
    p = tmp_path / "vaultd.toml"
    p.write_text(text)
    return p


GOOD = """
state_dir = "state"
[[shares]]
name = "family"
path = "photos"
"""


def test_minimal_config_resolves_relative_paths_against_the_file(tmp_path: Path) -> None:
    s = load(write(tmp_path, GOOD), environ={})
    assert s.state_dir == tmp_path / "state"
    assert s.shares[0].path == tmp_path / "photos"
    assert s.analyzers.enabled == ["metadata"]


def test_unknown_key_is_reported_with_file_section_and_key(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + "[throttle]\nbatch_sise = 3\n")
    with pytest.raises(ConfigError) as exc:
        load(p, environ={})
    assert str(p) in str(exc.value)
    assert "[throttle] batch_sise: unknown key" in str(exc.value)


def test_wrong_type_names_the_key_and_reason(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + '[throttle]\nbatch_size = "many"\n')
    with pytest.raises(ConfigError, match=r"\[throttle\] batch_size: expected an integer"):
        load(p, environ={})


def test_missing_share_folder_is_refused_naming_the_share(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace('path = "photos"', 'path = "nowhere"'))
    with pytest.raises(ConfigError, match=r"\[\[shares\]\] #1 path: .*nowhere does not exist"):
        load(p, environ={})


def test_a_missing_share_folder_is_an_outage_for_a_real_start_not_an_error(
    tmp_path: Path,
) -> None:
    p = write(tmp_path, GOOD.replace('path = "photos"', 'path = "nowhere"'))
    s = load(p, environ={}, missing_shares_ok=True)  # a disk not mounted yet
    assert s.shares[0].path == tmp_path / "nowhere"


def test_a_share_path_that_is_a_file_is_refused_even_for_a_real_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    p = write(tmp_path, GOOD.replace('path = "photos"', 'path = "file"'))
    with pytest.raises(ConfigError, match=r"\[\[shares\]\] #1 path: .*file is not a folder"):
        load(p, environ={}, missing_shares_ok=True)


def test_share_without_name_is_a_missing_required_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[[shares]]\npath = "photos"\n')
    with pytest.raises(ConfigError, match=r"\[\[shares\]\] #1 name: required key is missing"):
        load(p, environ={})


def test_bad_cron_expression_is_explained(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + '[ingest]\nrescan = "every night"\n')
    with pytest.raises(ConfigError, match=r"\[ingest\] rescan: .*cron"):
        load(p, environ={})


def test_metrics_refuse_a_non_loopback_address(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + '[metrics]\nlisten = "0.0.0.0:9108"\n')
    with pytest.raises(ConfigError, match=r"\[metrics\] listen: .*loopback"):
        load(p, environ={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "state_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(p, environ={})


def test_environment_overrides_nested_and_top_level_keys(tmp_path: Path) -> None:
    env = {
        "VAULT_THROTTLE__BATCH_SIZE": "4",
        "VAULT_LOG_LEVEL": "DEBUG",
        "VAULT_ANALYZERS__ENABLED": '["metadata", "tagger"]',
    }
    s = load(write(tmp_path, GOOD), environ=env)
    assert s.throttle.batch_size == 4
    assert s.log_level == "DEBUG"
    assert s.analyzers.enabled == ["metadata", "tagger"]


def test_bad_environment_override_names_the_key_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(write(tmp_path, GOOD), environ={"VAULT_THROTTLE__BATCH_SIZE": "0"})
    assert (
        "[throttle] batch_size (from environment variable VAULT_THROTTLE__BATCH_SIZE): "
        "Input should be greater than or equal to 1, got the integer 0"
    ) in str(exc.value)


def test_vault_socket_is_not_taken_for_a_config_key() -> None:
    assert apply_env_overrides({}, {"VAULT_SOCKET": "/x"}) == {}


def test_the_documented_example_config_is_valid() -> None:
    s = load(REPO / "config" / "vaultd.toml", environ={}, check_paths=False)
    assert s.shares[0].name == "family"
