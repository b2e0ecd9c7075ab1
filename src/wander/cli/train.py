"""``wander train config.yaml [-o DIR] [--resume]``: train a force field (and Hamiltonian heads) from a YAML config.

Writes ``config.yaml``, ``lcurve.out``, ``tensorboard/``, ``checkpoint.pt`` and ``model.pt`` into DIR.
See docs/model.md for the config keys.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML training config (DeePMD-style keys)")
    parser.add_argument("-o", "--output", default=".", metavar="DIR",
                        help="run folder for checkpoints and logs (default: current folder)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/checkpoint.pt with identical results")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from wander.train.config import load_config
    from wander.train.loop import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    train(cfg, args.output, resume=args.resume, progress=not args.no_progress and sys.stderr.isatty())
    return 0
