"""Image I/O shared by the style image, mesh textures and outputs: PIL ↔ ``(H, W, 3)`` float tensors;
and the colour spaces the losses and quality figures split images into."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from mesh_style.errors import MeshStyleError


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """Any PIL image (palette, greyscale, RGBA, 16-bit) → ``(H, W, 3)`` float32 RGB in [0, 1].

    Alpha is dropped (composited on nothing): textures and paintings are treated as opaque.
    """
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # Pillow keeps 16-bit greyscale as integers; scale by the format's range, not by 255.
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode != "F" and values.max() > 255 else (1.0 if image.mode == "F" else 255.0)
        grey = np.clip(values / peak, 0.0, 1.0)
        return torch.from_numpy(np.repeat(grey[..., None], 3, axis=-1).copy())
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy())


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """``(H, W, 3)`` or ``(H, W, 4)`` float in [0, 1] → 8-bit RGB(A) PIL image (rounded, not truncated)."""
    array = (image.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, mode="RGBA" if image.shape[-1] == 4 else "RGB")


def read_image(path: Path, what: str, config_key: str) -> Image.Image:
    """Open an image file fully, turning every failure into a one-line :class:`MeshStyleError`."""
    if path.is_dir():
        raise MeshStyleError(f"{config_key}={path} is a folder (give the image file inside it)")
    if not path.is_file():
        raise MeshStyleError(f"{what} not found: {path} (check {config_key})")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except Image.DecompressionBombError as error:
        raise MeshStyleError(
            f"{what} {path} has more pixels than Pillow reads safely ({2 * Image.MAX_IMAGE_PIXELS:,} at most) "
            "(resize it below about 10000 × 10000 pixels)"
        ) from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise MeshStyleError(
            f"cannot read {what} {path}: {error} (use a JPEG, PNG or WebP file for {config_key})"
        ) from error


def resize_long_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so that the longer side is ``size`` pixels, keeping the aspect ratio."""
    scale = size / max(image.size)
    width, height = (max(1, round(side * scale)) for side in image.size)
    return image.resize((width, height), Image.Resampling.LANCZOS)


def image_grid(rows: list[torch.Tensor], gap: int = 4) -> Image.Image:
    """Tile batches of images: each ``(N, 3, H, W)`` in ``rows`` becomes one row, white gaps between."""
    n, _, height, width = rows[0].shape
    canvas = torch.ones(len(rows) * (height + gap) - gap, n * (width + gap) - gap, 3)
    for r, batch in enumerate(rows):
        for c, image in enumerate(batch):
            y, x = r * (height + gap), c * (width + gap)
            canvas[y : y + height, x : x + width] = image.permute(1, 2, 0).cpu()
    return tensor_to_pil(canvas)


def beside(left: Image.Image, right: Image.Image, gap: int = 4) -> Image.Image:
    """``right`` scaled to ``left``'s height and placed beside it, on white."""
    right = right.resize((max(1, round(right.width * left.height / right.height)), left.height), Image.LANCZOS)
    canvas = Image.new("RGB", (left.width + gap + right.width, left.height), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + gap, 0))
    return canvas


def texture_compare(originals: list[Image.Image], results: list[Image.Image], height: int = 512, gap: int = 4) -> Image.Image:
    """Each material's original texture atlas beside its stylised one (``height`` px tall), one row per material."""
    rows = [beside(o.resize((max(1, round(o.width * height / o.height)), height), Image.LANCZOS), r, gap) for o, r in zip(originals, results)]
    canvas = Image.new("RGB", (max(r.width for r in rows), len(rows) * (height + gap) - gap), "white")
    for i, row in enumerate(rows):
        canvas.paste(row, (0, i * (height + gap)))
    return canvas


def save_gif(frames: list[Image.Image], path: Path, seconds: float) -> None:
    """An endlessly looping GIF of ``frames`` lasting ``seconds``."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=round(1000 * seconds / len(frames)), loop=0)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflected borders."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB → ``(N, H, W)`` Rec. 601 luma; channels are dim 1, so ``(T, 3)`` rows give ``(T,)``."""
    return 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]


def chroma(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB → ``(N, 2, H, W)`` Cb and Cr (Rec. 601, centred on 0)."""
    y = luminance(images)
    return torch.stack([0.564 * (images[:, 2] - y), 0.713 * (images[:, 0] - y)], 1)


def grey(images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB → the same shape, each channel the luma."""
    return luminance(images).unsqueeze(1).expand_as(images)


def keep_chroma(texels: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """``(T, 3)`` RGB with the luma of ``texels`` and the chroma of ``original``: exactly where it
    fits, scaled down (same hue, less saturated) where it would leave [0, 1]³.

    Chroma is linear in ``rgb − luma``, so each texel keeps its original's offsets from luma. A
    saturated colour leaves little room for luma (pure yellow's lies in [0.68, 0.78]); scaling
    the offsets instead of clamping the luma lets the painting's light and dark strokes through,
    as dark ochre and pale yellow on a yellow duck.
    """
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=texels.dtype, device=texels.device)
    offsets = original - (original @ weights).unsqueeze(1)
    luma = (texels @ weights).unsqueeze(1).clamp(0, 1)
    room = torch.where(offsets > 0, 1 - luma, luma)  # distance to the face of the cube each offset points at
    scale = (room / offsets.abs().clamp_min(1e-6)).amin(1, keepdim=True).clamp(max=1)
    return luma + scale * offsets


#: How much a rounding error in luma counts against one in chroma when :func:`quantize` picks a level.
QUANTIZE_LUMA_WEIGHT = 0.3


def quantize(texels: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` RGB in [0, 1] → the 8-bit colour the exported PNG stores, chosen for its chroma.

    Each channel goes down or up to an 8-bit level; of the 8 choices, the one whose Cb and Cr move
    least (luma counting :data:`QUANTIZE_LUMA_WEIGHT` as much) wins. Rounding each channel alone
    tints near-greys and leaves chroma noise between neighbouring texels, which a close-up magnifies
    into speckle on smooth colours. On uniformly random colours the chroma error falls from 0.26 to
    0.20 levels (rms) and the luma error rises from 0.19 to 0.27: both well under a level.
    """
    levels = texels.clamp(0, 1) * 255.0
    low = levels.floor()
    best, best_cost = low, torch.full(levels.shape[:-1], math.inf, dtype=levels.dtype, device=levels.device)
    for choice in range(8):
        up = torch.tensor([choice >> 2 & 1, choice >> 1 & 1, choice & 1], dtype=levels.dtype, device=levels.device)
        candidate = (low + up).clamp(max=255.0)
        error = (candidate - levels).reshape(-1, 3).T[None, :, :, None]  # as a (1, 3, T, 1) image
        cost = chroma(error).square().sum(1) + QUANTIZE_LUMA_WEIGHT * luminance(error).square()
        cost = cost.view_as(best_cost)
        better = cost < best_cost
        best = torch.where(better[..., None], candidate, best)
        best_cost = torch.where(better, cost, best_cost)
    return best / 255.0


def blur_chroma(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(H, W, 3)`` RGB with its own luma and the chroma of its Gaussian blur (``sigma`` pixels; at
    most what the image's size allows): colour noise goes, light and dark strokes stay."""
    sigma = min(sigma, (min(image.shape[:2]) - 1) / 3)  # the reflected border needs a radius below the size
    if sigma <= 0:
        return image
    blurred = gaussian_blur(image.permute(2, 0, 1)[None], sigma)[0].permute(1, 2, 0)
    return keep_chroma(image.reshape(-1, 3), blurred.reshape(-1, 3)).view_as(image)
