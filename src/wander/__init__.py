"""wander: a Deep Potential force field with Wannier tight-binding heads for twisted 2D bilayers.

Subpackages
-----------
structures  monolayers, bilayers and commensurate twisted bilayers (ASE ``Atoms``)
io          Wannier90 file formats (``_hr.dat``, ``_wsvec.dat``, ``_centres.xyz``, ``.win``)
tb          tight-binding Hamiltonians, Bloch assembly, eigen/KPM solvers, bands and DOS
dft         Quantum ESPRESSO + Wannier90 reference-data pipeline
nn          DeepPot-SE descriptor, energy and Hamiltonian heads (needs torch)
"""

__version__ = "0.1.0"
