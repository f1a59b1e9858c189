"""Style input: the paintings, as tensors the feature extractor reads, and their colour options."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from mesh_style.errors import MeshStyleError
from mesh_style.images import pil_to_tensor, read_image, resize_long_side

COLOUR_MODES = ("transfer", "preserve")
COLOUR_METHODS = ("luminance", "histogram")


@dataclasses.dataclass
class Paintings:
    """One painting or several blended."""

    images: list[torch.Tensor]  #: each ``(1, 3, H, W)`` float32 RGB in [0, 1]
    weights: list[float]  #: one per image, summing to 1

    def to(self, device: torch.device) -> "Paintings":
        return dataclasses.replace(self, images=[image.to(device) for image in self.images])


def style_paths(cfg: DictConfig) -> list[str]:
    """``cfg.path`` (the ``style`` group) as a list: one painting or several."""
    if cfg.path is None:
        raise MeshStyleError("no style image given: pass style.path=painting.jpg")
    return list(cfg.path) if isinstance(cfg.path, (list, ListConfig)) else [cfg.path]


def check_style_config(cfg: DictConfig) -> list[float]:
    """The ``style`` group's values, before any file is read; returns the blend weights, summing to 1."""
    if cfg.colour not in COLOUR_MODES:
        raise MeshStyleError(f"style.colour={cfg.colour!r} is not one of {', '.join(COLOUR_MODES)}")
    if cfg.colour_method not in COLOUR_METHODS:
        raise MeshStyleError(f"style.colour_method={cfg.colour_method!r} is not one of {', '.join(COLOUR_METHODS)}")
    if not 16 <= cfg.size <= 4096:
        raise MeshStyleError(f"style.size={cfg.size} must be between 16 and 4096 pixels")
    if cfg.recolour_start and cfg.colour == "preserve":
        raise MeshStyleError("style.recolour_start=true recolours the original to the painting, style.colour=preserve keeps its colours: choose one")
    paths = style_paths(cfg)
    if not paths:
        raise MeshStyleError("style.path=[] holds no painting (give one path, or a list: style.path=[a.jpg,b.jpg])")
    weights = [1.0] * len(paths) if cfg.weights is None else list(cfg.weights)
    if len(weights) != len(paths):
        raise MeshStyleError(f"style.weights has {len(weights)} values for {len(paths)} paintings (give one per painting, or null for equal)")
    if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise MeshStyleError(f"style.weights={weights} must be finite numbers >= 0, not all 0")
    return [w / sum(weights) for w in weights]


def load_style(cfg: DictConfig) -> Paintings:
    """Read ``cfg.path`` (the ``style`` config group: one path or a list of them), each resized so
    its long side is ``cfg.size``, with ``cfg.weights`` (null: equal) normalised to sum to 1."""
    weights = check_style_config(cfg)
    images = [
        pil_to_tensor(resize_long_side(read_image(Path(path), "style image", "style.path"), cfg.size)).permute(2, 0, 1).unsqueeze(0)
        for path in style_paths(cfg)
    ]
    return Paintings(images, weights)


def _sqrt_psd(matrix: torch.Tensor, power: float) -> torch.Tensor:
    """``matrix ** power`` of a symmetric positive semi-definite ``(3, 3)`` matrix, eigenvalues floored."""
    values, vectors = torch.linalg.eigh(matrix.double())
    return ((vectors * values.clamp_min(1e-8) ** power) @ vectors.T).float()


def match_colours(rows: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Colours ``rows (R, 3)`` moved by the affine map that takes the colour mean and covariance of
    ``source (P, 3)`` to those of ``target (Q, 3)``: ``x' = μ_t + Σ_t^½ Σ_s^-½ (x − μ_s)`` (Gatys et al.
    2016, "Preserving color"), clamped to [0, 1]."""
    transform = _sqrt_psd(torch.cov(target.T), 0.5) @ _sqrt_psd(torch.cov(source.T), -0.5)
    return ((rows - source.mean(0)) @ transform.T.to(rows) + target.mean(0)).clamp(0, 1)


def recoloured(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` image recoloured to the colour mean and covariance of ``pixels (P, 3)``."""
    rows = image[0].flatten(1).T
    return match_colours(rows, rows, pixels).T.reshape_as(image)
