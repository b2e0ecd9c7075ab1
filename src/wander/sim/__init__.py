"""Simulations with the force field and the end-to-end twisted-bilayer workflow.

evaluation  compact neighbour lists and atom-chunked force-field evaluation
relax       geometry / cell relaxation with ASE optimizers (:func:`relax`)
md          NVE / NVT molecular dynamics with ASE integrators (:func:`run_md`)
memory      memory estimates of large runs and refusal of runs that cannot fit
predictors  ``atoms -> TBHamiltonian`` from Hamiltonian heads or a two-centre pz model
workflow    relax -> Hamiltonian -> flat bands, DOS, moire maps, summary (``wander run``)
"""
