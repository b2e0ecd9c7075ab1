"""Wannier90 file formats.

Readers for ``seedname_hr.dat``, ``seedname_wsvec.dat``, ``seedname_centres.xyz``,
``seedname.win``, ``seedname_band.dat`` and ``seedname_band.kpt``, a writer for
``seedname_hr.dat``, and the assignment of Wannier functions to atoms and
orbital labels.  Readers raise :class:`FormatError` naming the file and line;
writers replace files atomically.
"""

from .assignment import orbital_assignment
from .bands import read_band_dat, read_band_kpt
from .centres import read_centres_xyz
from .errors import FormatError
from .hr import HrData, read_hr, write_hr
from .win import WinData, read_win
from .wsvec import WsvecData, apply_wsvec, read_wsvec

__all__ = [
    "FormatError",
    "HrData",
    "read_hr",
    "write_hr",
    "WsvecData",
    "read_wsvec",
    "apply_wsvec",
    "read_centres_xyz",
    "WinData",
    "read_win",
    "orbital_assignment",
    "read_band_dat",
    "read_band_kpt",
]
