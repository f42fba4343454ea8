"""Flags, their environment variables, and which wins; and the one-line start-up error for a
token file the operator cannot read (the Docker tier, tests/docker/test_compose_recipes.py, sees
the same line from a real container)."""

import errno
import os
import re

import pytest
from support import startup_refusal

from vm_operator.config import build_parser, known_variables, load_config, unknown_variables
from vm_operator.tokens import unreadable_secret_file


def test_defaults() -> None:
    config = load_config([], {"HOME": "/home/u"})
    assert (config.host, config.port, config.cache_ttl, config.max_running) == ("127.0.0.1", 8082, 1.0, 2)
    assert config.tart_home == "/home/u/.tart"
    assert "/vm-operator/homes/home-u-.tart-" in config.state_dir
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


# --- secrets, variables validated alike, words ----------------------------------------

TOKEN = "a-token-of-some-length-0123456789"


@pytest.mark.parametrize("name", ["VM_OPERATOR_TOKEN", "VM_OPERATOR_READ_TOKEN"])
@pytest.mark.parametrize("value", ["", " ", "\n", " \t\r\n "])
def test_a_blank_token_variable_is_refused(name: str, value: str) -> None:
    assert f"vm-operator: {name} is empty" in startup_refusal({name: value})


@pytest.mark.parametrize("name", ["VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN_FILE"])
@pytest.mark.parametrize("content", [b"", b" ", b"\n", b"\r\n", b"\n\n\t \n"])
def test_a_blank_token_file_is_refused(tmp_path, name: str, content: bytes) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    assert startup_refusal({name: str(path)}) == (
        f"vm-operator: {name} ({path}) is empty; put the token there, or unset {name} to run "
        "without this token")


@pytest.mark.parametrize("name", ["VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN_FILE"])
def test_a_blank_token_file_variable_is_refused(name: str) -> None:
    assert f"{name} is set but empty" in startup_refusal({name: " "})


@pytest.mark.parametrize(("content", "expected"), [
    (b"\xff\xfe\x80 not utf-8 at all, and long", "is not text"),
    (b"x" * 5000, "is larger than 4096 bytes"),
    (b"first-line-of-the-token\nsecond-line-of-it\n", "line break"),
    ("caf\u00e9-token-with-accents".encode(), "non-ASCII"),
    (b"tiny-tok\n", "is shorter than 16 characters"),
])
def test_a_bad_token_file_is_named_as_the_file(tmp_path, content: bytes, expected: str) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    message = startup_refusal({"VM_OPERATOR_TOKEN_FILE": str(path)})
    assert message.startswith(f"vm-operator: VM_OPERATOR_TOKEN_FILE ({path}) ")
    assert expected in message
    assert content.decode("utf-8", "ignore").strip()[:8] not in message  # never echoed


def test_an_unreadable_token_file_is_refused(tmp_path) -> None:
    message = startup_refusal({"VM_OPERATOR_READ_TOKEN_FILE": str(tmp_path)})  # a directory
    assert message == (f"vm-operator: cannot read VM_OPERATOR_READ_TOKEN_FILE ({tmp_path}): "
                       "Is a directory")


def test_a_token_set_twice_or_shared_is_refused(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    assert "set only one" in startup_refusal({"VM_OPERATOR_TOKEN": TOKEN,
                                       "VM_OPERATOR_TOKEN_FILE": str(path)})
    assert "read-only token is the full-access token" in startup_refusal(
        {"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_READ_TOKEN_FILE": str(path)})


def test_tokens_are_trimmed() -> None:
    config = load_config([], {"VM_OPERATOR_TOKEN": f"  {TOKEN}\n"})
    assert config.token == TOKEN and config.read_token is None


@pytest.mark.parametrize(("value", "enabled"), [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), ("Yes", True), ("on", True),
    ("ON", True), (" on ", True),
    ("0", False), ("false", False), ("False", False), ("no", False), ("NO", False),
    ("off", False), ("Off", False), ("OFF", False),
    ("", True), ("  ", True),  # set but empty: as if not set
])
def test_access_log_variable(value: str, enabled: bool) -> None:
    assert load_config([], {"VM_OPERATOR_ACCESS_LOG": value}).access_log is enabled


def test_no_access_log_flag_wins_over_the_variable() -> None:
    assert load_config(["--no-access-log"], {"VM_OPERATOR_ACCESS_LOG": "on"}).access_log is False


@pytest.mark.parametrize(("env", "expected"), [
    ({"VM_OPERATOR_ACCESS_LOG": "maybe"}, "vm-operator: VM_OPERATOR_ACCESS_LOG: must be one of"),
    ({"VM_OPERATOR_PORT": "abc"}, "vm-operator: VM_OPERATOR_PORT: must be a whole number, not 'abc'"),
    ({"VM_OPERATOR_PORT": "70000"}, "vm-operator: VM_OPERATOR_PORT: must be from 0 to 65535, not 70000"),
    ({"VM_OPERATOR_PORT": "8_082"}, "vm-operator: VM_OPERATOR_PORT: must be a whole number"),
    ({"VM_OPERATOR_HOST": "not a host"}, "vm-operator: VM_OPERATOR_HOST: must be an IP address"),
    ({"VM_OPERATOR_TART_TIMEOUT": "nan"}, "vm-operator: VM_OPERATOR_TART_TIMEOUT: must be a number"),
    ({"VM_OPERATOR_TART_TIMEOUT": "0"}, "vm-operator: VM_OPERATOR_TART_TIMEOUT: must be from 0.1 to 600, not 0"),
    ({"VM_OPERATOR_START_TIMEOUT": "inf"}, "vm-operator: VM_OPERATOR_START_TIMEOUT: must be a number"),
    ({"VM_OPERATOR_CACHE_TTL": "61"}, "vm-operator: VM_OPERATOR_CACHE_TTL: must be from 0 to 60, not 61"),
    ({"VM_OPERATOR_MAX_RUNNING": "-1"}, "vm-operator: VM_OPERATOR_MAX_RUNNING: must be at least 0, not -1"),
    ({"VM_OPERATOR_MAX_CONNECTIONS": "0"}, "vm-operator: VM_OPERATOR_MAX_CONNECTIONS: must be from 1 to 10000"),
    ({"VM_OPERATOR_HEADER_TIMEOUT": "ten"}, "vm-operator: VM_OPERATOR_HEADER_TIMEOUT: must be a number"),
    ({"VM_OPERATOR_ALLOWED_HOSTS": "mac.local:8082"}, "vm-operator: VM_OPERATOR_ALLOWED_HOSTS: must be host names"),
    ({"VM_OPERATOR_CORS_ORIGINS": "*"}, "vm-operator: VM_OPERATOR_CORS_ORIGINS: must be origins"),
    ({"VM_OPERATOR_CORS_ORIGINS": "https://a.example/"}, "vm-operator: VM_OPERATOR_CORS_ORIGINS: must be origins"),
    ({"VM_OPERATOR_TART_SSH": "-oProxyCommand=x"}, "vm-operator: VM_OPERATOR_TART_SSH: "),
    ({"VM_OPERATOR_TART_SSH": "me@h", "VM_OPERATOR_SSH_PORT": "0"}, "vm-operator: VM_OPERATOR_SSH_PORT: must be from 1 to 65535"),
    ({"VM_OPERATOR_TART_SSH": "me@h", "VM_OPERATOR_SSH_KEY": "/nonexistent/key"}, "vm-operator: VM_OPERATOR_SSH_KEY: the SSH key"),
    ({"VM_OPERATOR_TART_SSH": "me@h", "VM_OPERATOR_SSH_KNOWN_HOSTS": "/nonexistent/kh"}, "vm-operator: VM_OPERATOR_SSH_KNOWN_HOSTS: the SSH known_hosts file"),
    ({"VM_OPERATOR_TART_SSH": "me@h", "VM_OPERATOR_SSH_CONNECT_TIMEOUT": "0"}, "vm-operator: VM_OPERATOR_SSH_CONNECT_TIMEOUT: must be from 1 to 600"),
    ({"VM_OPERATOR_TART_SSH": "me@h", "VM_OPERATOR_TART": "-x"}, "vm-operator: VM_OPERATOR_TART: the remote Tart binary"),
])
def test_a_bad_variable_is_named_as_the_variable(env: dict[str, str], expected: str) -> None:
    assert startup_refusal(env).startswith(expected)


@pytest.mark.parametrize(("argv", "expected"), [
    (["--port", "abc"], "argument --port: must be a whole number, not 'abc'"),
    (["--port", "70000"], "argument --port: must be from 0 to 65535, not 70000"),
    (["--max-running", "-1"], "argument --max-running: must be at least 0, not -1"),
    (["--cache-ttl", "-1"], "argument --cache-ttl: must be from 0 to 60, not -1"),
    (["--tart-timeout", "0"], "argument --tart-timeout: must be from 0.1 to 600, not 0"),
    (["--host", ""], "argument --host: must be an IP address or a host name"),
    (["--state-dir", " "], "argument --state-dir: must not be empty"),
])
def test_a_bad_flag_is_named_as_the_flag(capsys, argv: list[str], expected: str) -> None:
    with pytest.raises(SystemExit) as caught:
        load_config(argv, {"VM_OPERATOR_PORT": "8082"})
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "outside" not in err and "VM_OPERATOR_" not in err


def test_a_flag_overrides_a_bad_variable() -> None:
    assert load_config(["--port", "9000"], {"VM_OPERATOR_PORT": "abc"}).port == 9000


def test_ssh_errors_name_the_flag_when_the_flag_was_given() -> None:
    message = startup_refusal({}, ["--tart-ssh", "me@h", "--ssh-key", "/nonexistent/key"])
    assert message.startswith("vm-operator: --ssh-key: the SSH key")


def test_empty_variables_count_as_unset() -> None:
    env = {"VM_OPERATOR_PORT": "", "VM_OPERATOR_HOST": " ", "VM_OPERATOR_TART": "",
           "VM_OPERATOR_MAX_RUNNING": "", "VM_OPERATOR_TART_SSH": "", "VM_OPERATOR_CORS_ORIGINS": ""}
    config = load_config([], env)
    assert (config.port, config.host, config.max_running, config.ssh, config.cors_origins) == (
        8082, "127.0.0.1", 2, None, ())
    assert config.tart  # the default, not ""


def test_origins_and_hosts_are_normalised() -> None:
    config = load_config([], {"VM_OPERATOR_CORS_ORIGINS": "https://Dash.Example:8443, http://[::1]:3000",
                              "VM_OPERATOR_ALLOWED_HOSTS": "Mac.Local,::1"})
    assert config.cors_origins == ("https://dash.example:8443", "http://[::1]:3000")
    assert config.allowed_hosts == ("mac.local", "::1")


def test_help_explains_the_token_variables(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        load_config(["--help"], {})
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for line_start in ("VM_OPERATOR_TOKEN ", "VM_OPERATOR_TOKEN_FILE ", "VM_OPERATOR_READ_TOKEN ",
                       "VM_OPERATOR_READ_TOKEN_FILE "):
        assert f"\n  {line_start}" in text, line_start
    assert "full access" in text and "reads only" in text and "stops start-up" in text
    assert "1/true/yes/on" in text and "0/false/no/off" in text


@pytest.mark.parametrize(("env", "expected"), [
    ({"VM_OPERATOR_PORT": "8082", "HOME": "/root"}, []),
    ({"VM_OPERATOR_TOKEN_FIEL": "/run/t"}, [("VM_OPERATOR_TOKEN_FIEL", "VM_OPERATOR_TOKEN_FILE")]),
    ({"VM_OPERATOR_MAX_RUNING": "3"}, [("VM_OPERATOR_MAX_RUNING", "VM_OPERATOR_MAX_RUNNING")]),
    ({"VM_OPERATOR_ZZZ": "1"}, [("VM_OPERATOR_ZZZ", None)]),
    ({"VM_OPERATOR_URL": "http://127.0.0.1:8082", "VM_OPERATOR_BIND": "0.0.0.0",
      "VM_OPERATOR_READ_TOKEN_FILE": "/t", "VM_OPERATOR_SSH_KNOWN_HOSTS": "/k"}, []),
])
def test_unknown_variables_are_named_with_the_closest_known_one(
        env: dict[str, str], expected: list[tuple[str, str | None]]) -> None:
    assert unknown_variables(env) == expected


def test_every_variable_the_help_names_is_known() -> None:
    named = set(re.findall(r"VM_OPERATOR_[A-Z_]*[A-Z]", build_parser().format_help()))
    assert named and named <= known_variables()


def test_the_help_names_every_route_open_without_a_token() -> None:
    from vm_operator.api import ROUTES

    text = " ".join(build_parser().format_help().split())
    open_to_all = {route.pattern.split("/")[1] for route in ROUTES if route.public}
    assert {"health", "ready", "problems", "ui"} <= open_to_all
    assert [seg for seg in sorted(open_to_all) if f"/{seg}" not in text] == []


# --- a token file the operator cannot read: one line that says why ---------------------------


PATH = "/run/secrets/vm_operator_token"


@pytest.mark.parametrize(
    ("exc", "wanted", "unwanted"),
    [
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
         ["VM_OPERATOR_TOKEN_FILE", PATH, "Permission denied", "runs as UID 10001 (GID 10001)",
          "setfacl -m u:10001:r FILE"], []),
        (FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)),
         ["VM_OPERATOR_TOKEN_FILE", PATH, "No such file or directory"], ["UID", "setfacl"]),
        (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)),
         ["Is a directory"], ["UID"]),
    ],
    ids=["permission", "missing", "directory"],
)
def test_message_names_file_reason_and_for_permissions_the_user(
        exc: OSError, wanted: list[str], unwanted: list[str]) -> None:
    message = unreadable_secret_file("VM_OPERATOR_TOKEN_FILE", PATH, exc, uid=10001, gid=10001)
    assert "\n" not in message and message.startswith("vm-operator: cannot read ")
    for part in wanted:
        assert part in message, (part, message)
    for part in unwanted:
        assert part not in message, (part, message)


def test_load_config_stops_with_it(tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit) as stop:
        load_config([], {"HOME": str(tmp_path), "VM_OPERATOR_READ_TOKEN_FILE": str(missing)})
    assert str(stop.value) == ("vm-operator: cannot read VM_OPERATOR_READ_TOKEN_FILE "
                               f"({missing}): No such file or directory")
