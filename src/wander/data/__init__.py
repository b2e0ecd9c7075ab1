"""Training data: neighbour lists, typed graph batches and dataset readers.

``neighbors`` needs only numpy/ASE/matscipy; ``graph`` and ``datasets.load_graphs`` need torch.
Import the submodules directly, e.g. ``from wander.data.graph import AtomGraph``.
"""
