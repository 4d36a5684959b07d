"""Every command's --help: one "Examples:" block, text click can wrap cleanly, and the root's --version help."""

from __future__ import annotations

import pytest
import typer.main
from typer.testing import CliRunner

from segcli.cli.app import app


def _commands(command, path=()):
    if getattr(command, "commands", None):  # a group (typer's own click: no click.Group to test against)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_every_command_is_walked():
    assert {"train", "export", "data check", "data convert", "weights path"} <= {" ".join(c) for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_exactly_one_examples_block(command):
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Examples:") == 1, result.stdout
    assert ".     " not in result.stdout  # a docstring's indentation left inside a rewrapped sentence


def test_help_wording():
    check = CliRunner().invoke(app, ["data", "check", "--help"]).stdout
    assert check.index("Layouts of DATA") < check.index("in one of the layouts shown above")
    assert "layouts below" not in check
    assert "mask agreement. Float32 exports" in " ".join(CliRunner().invoke(app, ["export", "--help"]).stdout.split())
    root = " ".join(CliRunner().invoke(app, ["--help"]).stdout.split())
    assert "--version Print the versions of segcli, TensorFlow, Keras and OpenVINO, and the CPU's ISA." in root
