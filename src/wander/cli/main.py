"""Entry point of the ``wander`` command.

Each subcommand lives in its own module ``wander.cli.<name>`` exposing
``add_arguments(parser)`` and ``run(args) -> int | None``.  Modules are imported
lazily so that ``wander twist`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# (subcommand, module, one-line help)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("twist", "wander.cli.twist", "build monolayers, bilayers and commensurate twisted bilayers"),
    ("bands", "wander.cli.bands", "tight-binding band structure plot"),
    ("dos", "wander.cli.dos", "tight-binding density of states (exact or KPM)"),
    ("relax", "wander.cli.relax", "relax a structure with the force field (positions, in-plane cell)"),
    ("md", "wander.cli.md", "molecular dynamics with the force field (NVE, Langevin, Berendsen)"),
    ("hamiltonian", "wander.cli.hamiltonian", "predict the Wannier tight-binding Hamiltonian of a structure"),
    ("run", "wander.cli.run", "twisted bilayer end to end: relax, Hamiltonian, flat bands, DOS, moire maps"),
    ("dft", "wander.cli.dft", "DFT + Wannier90 reference-data pipeline"),
    ("train", "wander.cli.train", "train a model from a YAML config"),
    ("test", "wander.cli.test", "evaluate a trained model on a dataset"),
    ("refit-interlayer", "wander.cli.refit", "refit a trained model's interlayer term to the registry scan"),
)


def build_parser() -> argparse.ArgumentParser:
    from wander import __version__

    parser = argparse.ArgumentParser(
        prog="wander",
        description="Deep Potential force field + Wannier tight-binding Hamiltonians for twisted 2D bilayers.",
    )
    parser.add_argument("--version", action="version", version=f"wander {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in COMMANDS:
        if importlib.util.find_spec(module) is None:
            continue
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:  # optional dependency missing (e.g. torch)
            if exc.name and exc.name.startswith("wander"):
                raise
            p.set_defaults(_missing=str(exc))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 1
    if getattr(args, "_missing", None):
        print(f"wander {args.command}: missing dependency: {args._missing}", file=sys.stderr)
        return 2
    try:
        rc = importlib.import_module(args._module).run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"wander {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
