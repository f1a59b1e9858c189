"""Hydra configs of mesh_style; installed as the package ``mesh_style.configs`` (see pyproject.toml).

Hydra imports this package to read its YAML files, so the schema (``schema``, the first entry of
config.yaml) is registered here: before any config is composed, by whichever route (command line,
``stylize``, scripts, tests).
"""

from mesh_style.schema import register

register()
