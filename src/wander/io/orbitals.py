"""Wannier90 angular-momentum names and their order.

Wannier90 labels each projection by ``(l, mr)``.  Within one projection line it
emits the selected functions sorted by ``l`` (hybrids, l < 0, first) and then
by ``mr``, whatever order they were written in; this was checked against the
``.nnkp`` file written by ``wannier90.x -pp`` (3.1).
"""

from __future__ import annotations

__all__ = ["ORBITAL_LABELS", "parse_angular"]

#: Label of each ``mr`` (index mr - 1) for each ``l`` (Wannier90 user guide, tables 3.1 and 3.2).
ORBITAL_LABELS: dict[int, tuple[str, ...]] = {
    0: ("s",),
    1: ("pz", "px", "py"),
    2: ("dz2", "dxz", "dyz", "dx2-y2", "dxy"),
    3: ("fz3", "fxz2", "fyz2", "fz(x2-y2)", "fxyz", "fx(x2-3y2)", "fy(3x2-y2)"),
    -1: ("sp-1", "sp-2"),
    -2: ("sp2-1", "sp2-2", "sp2-3"),
    -3: ("sp3-1", "sp3-2", "sp3-3", "sp3-4"),
    -4: ("sp3d-1", "sp3d-2", "sp3d-3", "sp3d-4", "sp3d-5"),
    -5: ("sp3d2-1", "sp3d2-2", "sp3d2-3", "sp3d2-4", "sp3d2-5", "sp3d2-6"),
}

_SHELLS = {"s": 0, "p": 1, "d": 2, "f": 3, "sp": -1, "sp2": -2, "sp3": -3, "sp3d": -4, "sp3d2": -5}

#: Accepted orbital names -> set of (l, mr).  Single f functions are left out on
#: purpose: Wannier90 3.1 maps their names inconsistently with the l=3 table.
_NAMES: dict[str, frozenset[tuple[int, int]]] = {}
for _name, _l in _SHELLS.items():
    _NAMES[_name] = frozenset((_l, mr) for mr in range(1, len(ORBITAL_LABELS[_l]) + 1))
for _l, _labels in ORBITAL_LABELS.items():
    if _l != 3:
        for _mr, _label in enumerate(_labels, start=1):
            _NAMES[_label] = frozenset({(_l, _mr)})


def _parse_l_piece(piece: str) -> set[tuple[int, int]]:
    """``l=2`` or ``l=2,mr=1,3`` -> {(l, mr)}."""
    parts = [p.strip() for p in piece.split(",")]
    try:
        l = int(parts[0].split("=", 1)[1])
    except ValueError:
        raise ValueError(f"bad l value in {piece!r}") from None
    if l not in ORBITAL_LABELS:
        raise ValueError(f"l={l} is not a Wannier90 angular momentum (-5..3)")
    n_mr = len(ORBITAL_LABELS[l])
    if len(parts) == 1:
        return {(l, mr) for mr in range(1, n_mr + 1)}
    if not parts[1].startswith("mr="):
        raise ValueError(f"expected 'mr=' after 'l={l}' in {piece!r}")
    mr_texts = [parts[1][3:], *parts[2:]]
    out = set()
    for text in mr_texts:
        try:
            mr = int(text)
        except ValueError:
            raise ValueError(f"bad mr value {text!r} in {piece!r}") from None
        if not 1 <= mr <= n_mr:
            raise ValueError(f"mr={mr} out of range 1..{n_mr} for l={l}")
        out.add((l, mr))
    return out


def parse_angular(spec: str) -> list[str]:
    """Expand the angular part of a projection into Wannier90-ordered labels.

    Parameters
    ----------
    spec : str
        E.g. ``"d"``, ``"pz"``, ``"p;s"``, ``"px,py"``, ``"l=2,mr=1,3"``, ``"sp3"``
        (case-insensitive; ``;`` separates groups, ``,`` separates names).

    Returns
    -------
    list of str
        Labels sorted as Wannier90 emits them (by l, hybrids first, then mr),
        each function once, e.g. ``"p;s"`` -> ``['s', 'pz', 'px', 'py']``.

    Raises
    ------
    ValueError
        Unknown name, l or mr out of range, or a spin selection.
    """
    text = spec.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty orbital specification")
    if "(" in text or "[" in text:
        raise ValueError(f"spin-resolved projections are not supported: {spec!r}")
    selected: set[tuple[int, int]] = set()
    for piece in text.split(";"):
        if not piece:
            raise ValueError(f"empty orbital group in {spec!r}")
        if piece.startswith("l="):
            selected |= _parse_l_piece(piece)
            continue
        for name in piece.split(","):
            if name in _NAMES:
                selected |= _NAMES[name]
            elif name in ORBITAL_LABELS[3] or name in {"fzx2-y2", "fx(x2-3y2)", "fy(3x2-y2)"}:
                raise ValueError(f"single f orbital {name!r}: give it as l=3,mr=... instead")
            else:
                raise ValueError(f"unknown orbital name {name!r}")
    return [ORBITAL_LABELS[l][mr - 1] for l, mr in sorted(selected)]
