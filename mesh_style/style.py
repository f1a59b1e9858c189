"""Style input: the paintings, as tensors the feature extractor reads, and their colour options."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from omegaconf import DictConfig

from mesh_style.images import keep_chroma, luminance, pil_to_tensor, read_image, resize_long_side
from mesh_style.schema import blend_weights, style_paths


@dataclasses.dataclass
class Paintings:
    """One painting or several blended."""

    images: list[torch.Tensor]  #: each ``(1, 3, H, W)`` float32 RGB in [0, 1]
    weights: list[float]  #: one per image, summing to 1

    def to(self, device: torch.device) -> "Paintings":
        return dataclasses.replace(self, images=[image.to(device) for image in self.images])

    def pixels(self) -> torch.Tensor:
        """``(Q, 3)``: every painting's pixels, the palette the colour matches aim at."""
        return torch.cat([image[0].flatten(1).T for image in self.images])


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


#: The most :func:`recolour_layout_kept` stretches the original's light and dark. Photographs span
#: most of [0, 1] already (the benchmark's textures ask for 0.56-1.17 with its paintings); a nearly
#: flat texture would be stretched far more (the Duck's yellow 3.2× onto Starry Night), its few darker
#: parts, the beak, pushed below black: flat, with no room left for strokes or hue.
LUMA_STRETCH_MAX = 1.25


def recolour_layout_kept(rows: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Colours ``rows (R, 3)`` in the palette of ``target (Q, 3)``, light and dark in their order:
    the chroma of :func:`match_colours` (``source (P, 3)``'s colour mean and covariance taken to the
    target's), the luma ``rows``'s own with ``source``'s luma mean and deviation taken to the target's.

    :func:`match_colours` alone mixes the channels, so its luma is not the original's (an orange and
    navy palette turns a bright blue sky darker than a dark red tower), and that start, which the
    content loss keeps, has lost part of the layout before the first step. An affine map of the luma
    keeps light and dark in order; matching the luma's whole distribution instead would stretch a
    nearly flat texture's small differences (the Duck's yellow) into the painting's full range, and
    so would the deviations' ratio: it is capped at :data:`LUMA_STRETCH_MAX`.
    """
    luma = [luminance(x) for x in (rows, source, target)]
    scale = (luma[2].std() / luma[1].std().clamp_min(1e-6)).clamp(max=LUMA_STRETCH_MAX)
    grey = (luma[2].mean() + scale * (luma[0] - luma[1].mean())).unsqueeze(1).expand_as(rows)
    return keep_chroma(grey, match_colours(rows, source, target))


def recoloured(image: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``(1, 3, H, W)`` image recoloured to the colour mean and covariance of ``pixels (P, 3)``."""
    rows = image[0].flatten(1).T
    return match_colours(rows, rows, pixels).T.reshape_as(image)


#: Quantile levels of each one-dimensional match in :func:`transport_colours`.
QUANTILES = 256


def _piecewise_linear(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``x`` mapped through the increasing knots ``xp → fp`` (both ``(K,)``), flat beyond the ends."""
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    t = ((x - xp[i - 1]) / (xp[i] - xp[i - 1]).clamp_min(1e-12)).clamp(0, 1)
    return fp[i - 1] + t * (fp[i] - fp[i - 1])


def transport_colours(
    rows: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
    keep_luma: bool = False,
    iterations: int = 10,
    samples: int = 20000,
    seed: int = 0,
) -> torch.Tensor:
    """Colours ``rows (R, 3)`` moved by the map that takes the colour distribution of ``source (P, 3)``
    onto that of ``target (Q, 3)``, clamped to [0, 1]: iterative distribution transfer (Pitié et al.
    2007), a sliced optimal transport. Each iteration turns the colours into a random orthonormal
    basis and matches each axis's quantiles of ``source`` to ``target``'s, monotonically.

    Unlike :func:`match_colours` (mean and covariance) it reproduces the whole distribution: a
    texture in one pale hue takes the painting's darks, brights and minority hues (Starry Night's
    yellows), each colour going where its rank along the axes sends it. Up to ``samples`` rows of
    each distribution are used, drawn with ``seed``, so the map is deterministic.

    With ``keep_luma`` each row keeps its own luma and takes only the chroma it is moved to
    (:func:`~mesh_style.images.keep_chroma`): hue and saturation follow the painting, light and dark
    (the strokes, and the original's layout) stay where they were.
    """
    generator = torch.Generator().manual_seed(seed)

    def subset(x: torch.Tensor) -> torch.Tensor:
        return x[torch.randperm(len(x), generator=generator)[:samples].to(x.device)].double()

    moved, reference, out = subset(source), subset(target), rows.double()
    levels = torch.linspace(0, 1, QUANTILES, dtype=torch.float64, device=rows.device)
    # Quantiles never decrease; the ramp makes a flat stretch of the source increase, as the lookup needs.
    ramp = torch.arange(QUANTILES, dtype=torch.float64, device=rows.device) * 1e-9
    for _ in range(iterations):
        basis = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0].to(rows.device)
        a, b, c = moved @ basis, reference @ basis, out @ basis
        for axis in range(3):
            knots = torch.quantile(a[:, axis], levels) + ramp
            values = torch.quantile(b[:, axis], levels)
            a[:, axis] = _piecewise_linear(a[:, axis], knots, values)
            c[:, axis] = _piecewise_linear(c[:, axis], knots, values)
        moved, out = a @ basis.T, c @ basis.T
    out = out.clamp(0, 1).to(rows.dtype)
    return keep_chroma(rows, out) if keep_luma else out
