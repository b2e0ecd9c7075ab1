"""The ``wander`` dispatcher: every registered subcommand exists and is reachable."""

import importlib
import subprocess
import sys

import pytest

from wander.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("name,module", [(c[0], c[1]) for c in COMMANDS])
def test_every_registered_command_has_a_module(name, module):
    mod = importlib.import_module(module)
    assert callable(mod.add_arguments) and callable(mod.run), name


def test_help_lists_every_command():
    text = build_parser().format_help()
    for name, _, _ in COMMANDS:
        assert name in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_an_argparse_error():
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "wander.cli.main", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("wander ")
