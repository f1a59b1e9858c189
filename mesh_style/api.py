"""Python API: :func:`stylize`, the command line's run as a function call.

    from mesh_style import stylize
    result = stylize("Duck.glb", "starry_night.jpg", "out/duck", ["preset=fast", "loss.style_weight=10"])
    result.files["Duck_stylized.glb"], result.metrics["quality"]["style_gain"], result.textures[0]
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image

from mesh_style.cli import CONFIG_MODULE, quoted
from mesh_style.images import tensor_to_pil
from mesh_style.layout import RESULT_DIR
from mesh_style.mesh import load_mesh
from mesh_style.run import run


@dataclasses.dataclass(frozen=True)
class Result:
    """What :func:`stylize` made.

    Attributes:
        folder: ``out_dir/result``, every file of the result.
        metrics: as in ``metrics.json`` (quality figures, losses, timings, the config).
        textures: the stylised textures, one RGB image per material, in the order of the source's
            materials, as the exported mesh holds them.
    """

    folder: Path
    metrics: dict[str, Any]
    textures: list[Image.Image]

    @property
    def files(self) -> dict[str, Path]:
        """Every file of the result by name: meshes, textures, previews, ``metrics.json``."""
        return {name: self.folder / name for name in [*self.metrics["files"], "metrics.json"]}


def stylize(mesh: str | Path, painting: str | Path, out_dir: str | Path, overrides: Sequence[str] = ()) -> Result:
    """Stylise ``mesh`` with ``painting`` as ``mesh-style MESH PAINTING *overrides`` would, writing
    the result into ``out_dir/result`` (``out_dir`` is created; it should not hold an earlier result).

    Args:
        mesh, painting: input files (never modified).
        out_dir: the run folder (the checkpoint while running, then ``result/``).
        overrides: Hydra overrides, e.g. ``["preset=fast", "views.num=8"]``.

    Returns:
        The :class:`Result`: its folder and files, metrics and textures.

    Raises:
        mesh_style.errors.MeshStyleError: bad input or a bad value, with the one-line message the
            command line prints.
    """
    if not logging.getLogger().handlers:  # progress and warnings, as on the command line
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose("config", overrides=[f"mesh.path={quoted(str(mesh))}", f"style.path={quoted(str(painting))}", *overrides])
    metrics = run(cfg, Path(out_dir))
    folder = Path(out_dir) / RESULT_DIR
    exported = next(name for name in metrics["files"] if name.endswith((".glb", ".obj")))
    reloaded = load_mesh(OmegaConf.merge(cfg.mesh, {"path": str(folder / exported)}))  # the materials in the source's order
    return Result(folder, metrics, [tensor_to_pil(texture) for texture in reloaded.textures])
