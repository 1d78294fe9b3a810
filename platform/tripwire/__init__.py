"""Tripwire: a multimodal content-safety platform on Ray.

The library that the jobs (``pipelines/``), the Serve apps (``deployments/``) and the entry points import,
one package per capability, each depending only on the ones below it (an import-linter contract in
pyproject.toml): ``review``, ``compliance``, ``training`` | ``monitoring``, ``evaluation``, ``scan`` |
``serving``, ``moderation``, ``model``, ``data``, ``policy``, ``reporting`` | ``storage``, ``common``.
"""

__version__ = "0.1.0"
