"""``vm-operator launchd``'s TLS flags are the server's TLS settings, as the settings table
declares them: the same flags, the same help, each put in the agent's environment under the
server's variable."""

from __future__ import annotations

import argparse
import plistlib
from pathlib import Path

import pytest

from vm_operator.platform import launchd
from vm_operator.settings.declare import Declared, declared
from vm_operator.settings.table import TLS, Config

TLS_SETTINGS = [setting for setting in declared(Config) if setting.spec.section is TLS]


def actions(parser: argparse.ArgumentParser, command: str) -> dict[str, argparse.Action]:
    sub = next(action for action in parser._actions
               if isinstance(action, argparse._SubParsersAction))
    return {flag: action for action in sub.choices[command]._actions
            for flag in action.option_strings}


def test_the_table_has_tls_settings() -> None:
    """Not vacuous: the certificate, its key and the client CA."""
    assert {setting.flag for setting in TLS_SETTINGS} >= {"--tls-cert", "--tls-key",
                                                          "--tls-client-ca"}


@pytest.mark.parametrize("command", ["install", "print"])
@pytest.mark.parametrize("setting", TLS_SETTINGS, ids=lambda setting: setting.name)
def test_each_tls_flag_has_the_tables_help_and_variable(command: str, setting: Declared) -> None:
    found = actions(launchd._parser(), command)
    assert setting.flag in found
    help_text = found[setting.flag].help or ""
    assert setting.spec.help in help_text
    assert setting.variable in help_text


def test_each_tls_flag_goes_to_the_servers_variable(
        tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    files = {setting: tmp_path / f"{setting.name}.pem" for setting in TLS_SETTINGS}
    args = [word for setting, path in files.items() for word in (str(setting.flag), str(path))]
    assert launchd.main(["print", *args], home=tmp_path) == 0
    env = plistlib.loads(capsysbinary.readouterr().out)["EnvironmentVariables"]
    assert {setting.variable: env.get(setting.variable) for setting in files} == {
        setting.variable: str(path.resolve()) for setting, path in files.items()}
