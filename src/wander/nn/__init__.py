"""Neural-network models (needs torch).

- :mod:`wander.nn.env_mat`     smooth switch, environment-matrix rows, DeePMD normalisation statistics
- :mod:`wander.nn.networks`    DeePMD-style residual embedding / fitting nets
- :mod:`wander.nn.descriptor`  se_e2_a descriptor (:class:`~wander.nn.descriptor.DescrptSeA`)
- :mod:`wander.nn.fitting`     per-type energy fitting nets and energy bias
- :mod:`wander.nn.model`       :class:`~wander.nn.model.ForceField`: energy, forces, virial, stress
- :mod:`wander.nn.hamiltonian` tight-binding Hamiltonian heads on the same descriptor
"""
