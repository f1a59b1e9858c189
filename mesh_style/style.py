"""Style input: the painting, as a tensor the feature extractor reads."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor, read_image, resize_long_side


def load_style(cfg: DictConfig) -> torch.Tensor:
    """Read ``cfg.path`` (the ``style`` config group), resized so its long side is ``cfg.size``.

    Returns:
        ``(1, 3, H, W)`` float32 RGB in [0, 1].
    """
    if cfg.path is None:
        raise MeshStyleError("no style image given: pass style.path=painting.jpg")
    if not 16 <= cfg.size <= 4096:
        raise MeshStyleError(f"style.size={cfg.size} must be between 16 and 4096 pixels")
    image = resize_long_side(read_image(Path(cfg.path), "style image", "style.path"), cfg.size)
    return pil_to_tensor(image).permute(2, 0, 1).unsqueeze(0)
