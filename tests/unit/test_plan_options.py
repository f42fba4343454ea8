"""``vm-operator plan`` finds its operator as the client does: --url and --token-file are
declared once (``client.main.server_options``), with the same help and defaults."""

from __future__ import annotations

import argparse

from vm_operator import plan
from vm_operator.client.main import build_parser as client_parser


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_plan_and_the_client_declare_the_server_options_alike() -> None:
    mine, clients = options(plan.build_parser()), options(client_parser())
    assert mine["--url"].help == clients["--url"].help
    assert (mine["--url"].default, mine["--token-file"].default) == (None, None)
    assert mine["--token-file"].help == clients["--token-file"].help.replace(
        "there is no --token", "a read-only token is enough")
    args = plan.build_parser().parse_args(["vms.toml", "--url", "https://h:1",
                                           "--token-file", "t"])
    assert (args.url, args.token_file) == ("https://h:1", "t")
