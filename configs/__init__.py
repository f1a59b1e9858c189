"""Hydra configs of mesh_style; installed as the package ``mesh_style.configs`` (see pyproject.toml)."""
