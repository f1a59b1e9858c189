"""The typed intermediate between the two stages of rendering (as PyTorch3D's ``Fragments``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Fragments:
    """Rasterised views, one face per pixel.

    Attributes:
        pix_to_face: ``(N, H, W)`` int64 index into the mesh's faces, -1 for background.
        bary: ``(N, H, W, 3)`` float32 perspective-correct barycentric coordinates (0 on background).
    """

    pix_to_face: torch.Tensor
    bary: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(N, H, W)`` bool, True where a face covers the pixel."""
        return self.pix_to_face >= 0
