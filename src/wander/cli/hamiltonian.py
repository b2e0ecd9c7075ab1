"""``wander hamiltonian``: predict the Wannier tight-binding Hamiltonian of a structure.

Output by extension: ``*.npz`` (:meth:`wander.tb.TBHamiltonian.save`) or a Wannier90 ``_hr.dat``
file otherwise.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("structure", help="structure (extxyz or any ASE-readable file)")
    parser.add_argument("-o", "--output", required=True, help="seed_hr.dat (Wannier90) or H.npz")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--model", default=None,
                     help="checkpoint with Hamiltonian heads, or 'pretrained[:NAME]' (default: pretrained)")
    src.add_argument("--tb-model", default=None, help="two-centre pz model instead: moon-koshino, graphene-nn")
    add_hopping_cutoff_argument(parser)


def add_hopping_cutoff_argument(parser: argparse.ArgumentParser) -> None:
    """``--hopping-cutoff`` of the commands that predict a Hamiltonian from a model's heads."""
    parser.add_argument("--hopping-cutoff", type=float, default=None, metavar="A",
                        help="predict only the atom pairs within this distance (A), at most the heads' r_cut "
                             "(the shipped model: 9 A): fewer hoppings, less memory and time on very large "
                             "cells, at the cost of the dropped small hoppings (default: every pair the heads reach)")


def run(args: argparse.Namespace) -> int:
    from ase.io import read

    from wander.sim.predictors import predictor

    from wander.pretrained import resolve_model

    atoms = read(args.structure)
    pred = predictor(model=None if args.tb_model is not None else resolve_model(args.model),
                     tb_model=args.tb_model, hopping_cutoff=args.hopping_cutoff)
    ham = pred(atoms)
    if str(args.output).endswith(".npz"):
        ham.save(args.output)
    else:
        ham.to_hr(args.output)
    print(f"{pred.description}: {ham.n_orbitals} orbitals, {ham.n_hoppings} hoppings -> {args.output}")
    return 0
