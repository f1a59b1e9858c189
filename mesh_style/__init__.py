"""mesh_style: repaint the texture of a 3D model in the style of a painting."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["stylize", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use: ``import mesh_style`` (and so the command line's argument checks) stays
    # free of torch.
    if name == "stylize":
        from mesh_style.api import stylize

        return stylize
    raise AttributeError(f"module 'mesh_style' has no attribute {name!r}")
