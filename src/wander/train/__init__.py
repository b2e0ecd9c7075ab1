"""Training of the force field: YAML config, loss, loop, checkpoints (needs torch).

- :mod:`wander.train.config`      strict YAML config with DeePMD names
- :mod:`wander.train.loss`        energy / force / virial loss and the exp learning rate
- :mod:`wander.train.loop`        :func:`~wander.train.loop.train` with exact resume
- :mod:`wander.train.checkpoint`  save / load checkpoints, :func:`~wander.train.checkpoint.load_model`
"""
