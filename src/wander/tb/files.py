"""Atomic output files: write to a temporary file in the same folder, then ``os.replace``."""

from wander.io.atomic import atomic_path

__all__ = ["atomic_path"]
