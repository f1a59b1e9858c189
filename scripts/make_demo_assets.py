"""Make the bundled demo assets, deterministically (same bytes every run):

* ``assets/demo_vase.glb``: a vase of revolution (4,096 triangles) with a cylindrical UV map and a
  256² checker-and-bands texture, so UV orientation and seams are easy to judge.
* ``assets/demo_style.png``: a 256² procedural "painting": brush strokes made by line-integral
  convolution of noise along a swirling flow field, coloured with a night-sky palette.

Usage: ``python scripts/make_demo_assets.py [--out assets]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from scipy.ndimage import gaussian_filter, map_coordinates

SEED = 7


def vase_profile(t: np.ndarray) -> np.ndarray:
    """Radius of the vase at height fraction ``t`` in [0, 1]: a foot, a belly, a neck and a lip."""
    return 0.35 + 0.3 * np.sin(np.pi * t * 1.1) ** 2 - 0.18 * t + 0.12 * np.exp(-(((t - 0.97) / 0.04) ** 2))


def make_vase(texture: Image.Image, segments: int = 64, rings: int = 33) -> trimesh.Trimesh:
    """A closed-bottom surface of revolution with ``texture`` mapped cylindrically.

    The seam column is duplicated so that u runs 0 → 1 around the vase; v runs up its height.
    """
    t = np.linspace(0.0, 1.0, rings)
    u = np.linspace(0.0, 1.0, segments + 1)
    uu, tt = np.meshgrid(u, t)
    radius = vase_profile(tt)
    angle = 2 * np.pi * uu
    verts = np.stack([radius * np.cos(angle), tt * 1.6 - 0.8, radius * np.sin(angle)], -1).reshape(-1, 3)
    uvs = np.stack([uu, tt], -1).reshape(-1, 2)
    faces = []
    for r in range(rings - 1):
        for s in range(segments):
            a, b = r * (segments + 1) + s, r * (segments + 1) + s + 1
            c, d = a + segments + 1, b + segments + 1
            faces += [[a, c, b], [b, c, d]]
    # Bottom cap: a fan around a centre vertex that samples the texture's bottom row.
    centre = len(verts)
    verts = np.vstack([verts, [0.0, -0.8, 0.0]])
    uvs = np.vstack([uvs, [0.5, 0.0]])
    faces += [[centre, s, s + 1] for s in range(segments)]
    visual = trimesh.visual.TextureVisuals(
        uv=uvs, material=trimesh.visual.material.PBRMaterial(name="vase", baseColorTexture=texture, metallicFactor=0.0, roughnessFactor=0.8)
    )
    return trimesh.Trimesh(vertices=verts, faces=np.asarray(faces), visual=visual, process=False)


def make_checker_texture(size: int = 256) -> np.ndarray:
    """Warm checker with coloured horizontal bands and a marker in one corner (orientation check)."""
    y, x = np.mgrid[0:size, 0:size]
    checker = ((x // 32 + y // 32) % 2).astype(np.float32)
    image = np.empty((size, size, 3), np.float32)
    image[...] = np.array([0.93, 0.86, 0.72]) * (0.75 + 0.25 * checker[..., None])
    for row, colour in ((64, (0.75, 0.25, 0.2)), (160, (0.2, 0.45, 0.6))):
        image[row : row + 12] = colour
    image[:24, :24] = (0.1, 0.1, 0.1)  # top-left marker: UV (0, 1)
    return (image * 255 + 0.5).astype(np.uint8)


def make_style(size: int = 256) -> np.ndarray:
    """Swirling brush strokes: noise smeared along a curl-like flow field, coloured by a palette."""
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    # Flow direction: a few vortices plus smooth noise.
    angle = gaussian_filter(rng.standard_normal((size, size)), 24) * 40
    for cx, cy, spin in ((0.3, 0.35, 1), (0.72, 0.6, -1), (0.5, 0.85, 1)):
        angle += spin * np.arctan2(y - cy * size, x - cx * size) + spin * np.pi / 2
    dx, dy = np.cos(angle), np.sin(angle)
    # Line integral convolution: average the noise along the flow, both ways, for 12 px. The noise
    # is blurred first so that strokes are a few pixels wide, visible at CPU render sizes.
    noise = gaussian_filter(rng.random((size, size)), 1.2)
    noise = (noise - noise.mean()) / noise.std()
    strokes = noise.copy()
    for sign in (1.0, -1.0):
        px, py = x.copy(), y.copy()
        for _ in range(12):
            ix = np.clip(px, 0, size - 1).astype(int)
            iy = np.clip(py, 0, size - 1).astype(int)
            px += sign * dx[iy, ix]
            py += sign * dy[iy, ix]
            strokes += map_coordinates(noise, [py % size, px % size], order=1)
    strokes = np.clip((strokes - strokes.mean()) / strokes.std() * 0.22 + 0.5, 0, 1)
    # Palette: deep blue → teal → cream → yellow, chosen by a smooth field and the strokes.
    palette = np.array([[0.04, 0.07, 0.25], [0.1, 0.25, 0.55], [0.3, 0.55, 0.7], [0.92, 0.8, 0.4], [0.98, 0.7, 0.1]])
    field = gaussian_filter(rng.random((size, size)), 20)
    field = (field - field.min()) / np.ptp(field)
    level = np.clip(0.5 * field + 0.5 * strokes - 0.1, 0, 1) * (len(palette) - 1)
    low = np.floor(level).astype(int).clip(0, len(palette) - 2)
    frac = (level - low)[..., None]
    image = palette[low] * (1 - frac) + palette[low + 1] * frac
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo_vase.glb").write_bytes(trimesh.Scene({"vase": make_vase(Image.fromarray(make_checker_texture(), mode="RGB"))}).export(file_type="glb"))
    Image.fromarray(make_style(), mode="RGB").save(out / "demo_style.png", optimize=True)
    print(f"wrote {out / 'demo_vase.glb'} and {out / 'demo_style.png'}")


if __name__ == "__main__":
    main()
