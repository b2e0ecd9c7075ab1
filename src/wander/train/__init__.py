"""Training of the force field and the Hamiltonian heads: YAML config, loss, loop, checkpoints (needs torch).

- :mod:`wander.train.config`            strict YAML config with DeePMD names (+ ``model.hamiltonian``)
- :mod:`wander.train.data`              frames with optional Hamiltonian targets (DFT dataset folders), batches
- :mod:`wander.train.loss`              energy / force / virial and per-category Hamiltonian losses, exp learning rate
- :mod:`wander.train.loop`              :func:`~wander.train.loop.train` with exact resume
- :mod:`wander.train.checkpoint`        save / load checkpoints, ``load_model``, ``load_dual_model``
- :mod:`wander.train.evaluation`        force-field error tables (``wander test``)
- :mod:`wander.train.hamiltonian_eval`  Hamiltonian block and band errors (``wander test``)
"""
