"""Flags, their environment variables, and which wins."""

import pytest

from vm_operator.config import load_config


def test_defaults() -> None:
    config = load_config([], {"HOME": "/home/u"})
    assert (config.host, config.port, config.cache_ttl, config.max_running) == ("127.0.0.1", 8082, 1.0, 2)
    assert config.state_dir.endswith("vm-operator")
    assert not config.auth_enabled


def test_environment_then_flags() -> None:
    env = {"VM_OPERATOR_HOST": "0.0.0.0", "VM_OPERATOR_PORT": "9000", "VM_OPERATOR_TART": "/t",
           "VM_OPERATOR_TART_TIMEOUT": "3", "VM_OPERATOR_STATE_DIR": "/s"}
    config = load_config([], env)
    assert (config.host, config.port, config.tart, config.tart_timeout, config.state_dir) == (
        "0.0.0.0", 9000, "/t", 3.0, "/s")
    assert load_config(["--port", "9001", "--tart", "/u"], env).port == 9001


@pytest.mark.parametrize(
    "argv",
    [["--port", "70000"], ["--port", "x"], ["--tart-timeout", "0"], ["--cache-ttl", "-1"],
     ["--max-running", "-1"]],
)
def test_bad_values_exit(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        load_config(argv, {})


def test_bad_environment_value_exits() -> None:
    with pytest.raises(SystemExit):
        load_config([], {"VM_OPERATOR_PORT": "eighty"})


def test_tokens_from_files(tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-of-some-length\n")
    config = load_config([], {"VM_OPERATOR_TOKEN_FILE": str(token_file),
                              "VM_OPERATOR_READ_TOKEN": "read-only-token-0123"})
    assert config.token == "s3cret-token-of-some-length"
    assert config.read_token == "read-only-token-0123"
    assert config.auth_enabled


def test_short_token_is_refused() -> None:
    with pytest.raises(SystemExit):
        load_config([], {"VM_OPERATOR_TOKEN": "short"})


def test_missing_token_file_is_refused(tmp_path) -> None:
    with pytest.raises(SystemExit):
        load_config([], {"VM_OPERATOR_TOKEN_FILE": str(tmp_path / "absent")})


def test_lists() -> None:
    config = load_config(["--allowed-hosts", "Mac.local, ci.example", "--cors-origins", "https://a"], {})
    assert config.allowed_hosts == ("mac.local", "ci.example")
    assert config.cors_origins == ("https://a",)
