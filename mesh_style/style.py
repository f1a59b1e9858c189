"""Style input: the paintings, as tensors the feature extractor reads, and their colour options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig

from mesh_style.images import pil_to_tensor, read_image, resize_long_side
from mesh_style.schema import blend_weights, style_paths


@dataclasses.dataclass
class Paintings:
    """One painting or several blended."""

    images: list[torch.Tensor]  #: each ``(1, 3, H, W)`` float32 RGB in [0, 1]
    weights: list[float]  #: one per image, summing to 1

    def to(self, device: torch.device) -> "Paintings":
        return dataclasses.replace(self, images=[image.to(device) for image in self.images])


def load_style(cfg: DictConfig) -> Paintings:
    """Read ``cfg.path`` (the ``style`` config group: one path or a list of them), each resized so
    its long side is ``cfg.size``, with ``cfg.weights`` (null: equal) normalised to sum to 1."""
    weights = blend_weights(cfg)
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
