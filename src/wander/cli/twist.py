"""``wander twist``: monolayers, stacked bilayers and commensurate twisted bilayers.

Examples::

    wander twist --material graphene --angle 1.05 -o tbg.extxyz
    wander twist --material graphene --mn 1 2 -o tbg28.extxyz
    wander twist --material graphene --top-material hbn --angle 0 --max-strain 0.001 -o g_hbn.extxyz
    wander twist --material mos2 --bilayer AB --shift 0.1 0.2 -o mos2_ab.extxyz
    wander twist --material wse2 --monolayer -o wse2.extxyz
    wander twist --material graphene --list --max-atoms 20000 --min-angle 1
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

DEFAULT_MAX_ATOMS_LIST = 20000
DEFAULT_MAX_ATOMS_BUILD = 2_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``wander twist`` options on ``parser``."""
    parser.add_argument("--material", default="graphene",
                        help="layer material: graphene, hbn, mos2, ws2, mose2, wse2 or an MX2 formula "
                        "(bottom layer for bilayers; default: graphene)")
    parser.add_argument("--top-material", help="top layer material for hetero-bilayers")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--angle", type=float, help="twist angle in degrees (closest commensurate cell)")
    mode.add_argument("--mn", type=int, nargs=2, metavar=("M", "N"),
                      help="commensurate indices (moire vector M a1 + N a2 of the bottom layer)")
    mode.add_argument("--bilayer", metavar="STACKING",
                      help="untwisted bilayer with stacking AA, AB, BA or AA'")
    mode.add_argument("--monolayer", action="store_true", help="a single primitive layer")
    mode.add_argument("--list", action="store_true", help="print a table of commensurate angles")
    parser.add_argument("--top-mn", type=int, nargs=2, metavar=("P", "Q"),
                        help="hetero-bilayer with --mn: top-layer vector P a1 + Q a2 matched to M a1 + N a2")
    parser.add_argument("--stacking", default="AA",
                        help="stacking the twist starts from: AA, AB, BA, AA' (default: AA)")
    parser.add_argument("--center", default="atom",
                        help="rotation axis: 'atom', 'hexagon' or 'FX,FY' fractional in the bottom "
                        "primitive cell (default: atom)")
    parser.add_argument("--shift", type=float, nargs=2, metavar=("F1", "F2"),
                        help="--bilayer: extra fractional in-plane shift of the top layer")
    parser.add_argument("--distance", type=float,
                        help="distance between the layers' mean planes in Angstrom (M-M for MX2; "
                        "default: per material)")
    parser.add_argument("--vacuum", type=float, default=20.0, help="vacuum in Angstrom (default: 20)")
    parser.add_argument("--max-atoms", type=int,
                        help=f"largest cell: listed with --list (default {DEFAULT_MAX_ATOMS_LIST}) or "
                        f"searched with --angle (default {DEFAULT_MAX_ATOMS_BUILD})")
    parser.add_argument("--min-angle", type=float, default=0.0, help="--list: smallest angle (deg)")
    parser.add_argument("--max-angle", type=float, default=60.0, help="--list: largest angle (deg)")
    parser.add_argument("--angle-tol", type=float, default=0.01,
                        help="largest accepted |actual - requested| angle in degrees (default: 0.01)")
    parser.add_argument("--max-strain", type=float, default=0.001,
                        help="largest accepted strain of the top layer, fraction (default: 0.001)")
    parser.add_argument("-o", "--output", help="output file; format from the extension (extxyz keeps "
                        "the per-atom layer index)")


def _center(text: str):
    if text in ("atom", "hexagon"):
        return text
    try:
        fx, fy = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise ValueError(f"--center must be 'atom', 'hexagon' or 'FX,FY', got {text!r}") from exc
    return (fx, fy)


def write_atomic(path: str, atoms) -> None:
    """Write ``atoms`` with ``ase.io.write`` through a temporary file and ``os.replace``."""
    from ase.io import write
    from ase.io.formats import filetype

    fmt = filetype(path, read=False)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        write(tmp, atoms, format=fmt)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _print_table(args) -> None:
    from wander.structures import commensurate_angles

    if args.top_material:
        raise ValueError("--list tabulates homobilayers; drop --top-material")
    cells = commensurate_angles(
        args.material,
        max_atoms=args.max_atoms or DEFAULT_MAX_ATOMS_LIST,
        min_angle=args.min_angle,
        max_angle=args.max_angle,
    )
    print(f"{'angle (deg)':>12} {'m':>5} {'n':>5} {'atoms':>9}")
    for c in cells:
        print(f"{c.angle:12.4f} {c.m:5d} {c.n:5d} {c.n_atoms:9d}")
    print(f"{len(cells)} commensurate cells for {args.material} (at most "
          f"{args.max_atoms or DEFAULT_MAX_ATOMS_LIST} atoms)")


def run(args: argparse.Namespace) -> int:
    """Build the requested structure, write it and print a one-line summary."""
    from wander.structures import bilayer, monolayer, twisted_bilayer

    if args.list:
        _print_table(args)
        return 0
    if args.shift is not None and args.bilayer is None:
        raise ValueError("--shift applies to --bilayer")
    if args.top_mn is not None and args.mn is None:
        raise ValueError("--top-mn needs --mn")
    if args.monolayer:
        if args.top_material:
            raise ValueError("--monolayer takes no --top-material")
        atoms = monolayer(args.material, vacuum=args.vacuum)
        what = f"monolayer {args.material}"
    elif args.bilayer is not None:
        atoms = bilayer(args.material, args.top_material, stacking=args.bilayer, shift=args.shift,
                        distance=args.distance, vacuum=args.vacuum, max_strain=args.max_strain)
        what = f"{args.bilayer} bilayer {args.material}/{args.top_material or args.material}"
    else:
        m, n = args.mn if args.mn is not None else (None, None)
        atoms = twisted_bilayer(
            args.material, angle=args.angle, m=m, n=n, top=args.top_material,
            top_mn=None if args.top_mn is None else tuple(args.top_mn),
            distance=args.distance, vacuum=args.vacuum, center=_center(args.center),
            stacking=args.stacking, max_strain=args.max_strain, angle_tol=args.angle_tol,
            max_atoms=args.max_atoms or DEFAULT_MAX_ATOMS_BUILD,
        )
        info = atoms.info
        what = (f"twisted bilayer {args.material}/{args.top_material or args.material}: "
                f"angle {info['angle']:.4f} deg, m={info['m']} n={info['n']}")
        if args.top_material:
            what += f" (top {info['m_top']} {info['n_top']}), strain {100 * info['strain']:+.4f} %"
    lengths = " ".join(f"{x:.3f}" for x in atoms.cell.lengths())
    dest = f" -> {args.output}" if args.output else " (not written: no -o)"
    if args.output:
        write_atomic(args.output, atoms)
    print(f"{what}, {len(atoms)} atoms, cell {lengths} Angstrom{dest}")
    sys.stdout.flush()
    return 0
