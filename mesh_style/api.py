"""Python API: :func:`stylize`, the command line's run as a function call.

    from mesh_style import stylize
    metrics = stylize("Duck.glb", "starry_night.jpg", "out/duck", ["preset=fast", "loss.style_weight=3"])
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_module

from mesh_style.cli import CONFIG_MODULE, quoted
from mesh_style.run import run


def stylize(mesh: str | Path, painting: str | Path, out_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Stylise ``mesh`` with ``painting`` as ``mesh-style MESH PAINTING *overrides`` would, writing
    the results into ``out_dir`` (created; it should not hold an earlier result).

    Args:
        mesh, painting: input files (never modified).
        out_dir: folder for the results.
        overrides: Hydra overrides, e.g. ``["preset=fast", "views.num=8"]``.

    Returns:
        The metrics also written to ``out_dir/metrics.json``.

    Raises:
        mesh_style.errors.MeshStyleError: bad input or a bad value, with the one-line message the
            command line prints.
    """
    if not logging.getLogger().handlers:  # progress and warnings, as on the command line
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=[f"mesh.path={quoted(str(mesh))}", f"style.path={quoted(str(painting))}", *overrides])
    return run(cfg, Path(out_dir))
