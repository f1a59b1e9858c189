"""Style input: every image kind Pillow reads becomes (1, 3, H, W) RGB in [0, 1]."""

import numpy as np
import pytest
import torch
from PIL import Image

from mesh_style.errors import MeshStyleError
from mesh_style.style import load_style


def _gradient(mode_size=(40, 20)) -> np.ndarray:
    width, height = mode_size
    return np.tile(np.linspace(0, 1, width, dtype=np.float32), (height, 1))


@pytest.mark.parametrize(
    "name, make",
    [
        ("grey.png", lambda g: Image.fromarray((g * 255).astype(np.uint8), mode="L")),
        ("grey16.png", lambda g: Image.fromarray((g * 65535).astype(np.uint16))),
        ("rgba.png", lambda g: Image.fromarray((np.dstack([g, g, g, np.ones_like(g)]) * 255).astype(np.uint8), mode="RGBA")),
        ("palette.png", lambda g: Image.fromarray((g * 255).astype(np.uint8), mode="L").convert("P")),
        ("photo.webp", lambda g: Image.fromarray((np.dstack([g] * 3) * 255).astype(np.uint8), mode="RGB")),
        ("photo.jpg", lambda g: Image.fromarray((np.dstack([g] * 3) * 255).astype(np.uint8), mode="RGB")),
    ],
)
def test_image_kinds_are_converted(tmp_path, make_cfg, name, make):
    path = tmp_path / name
    make(_gradient()).save(path)
    style = load_style(make_cfg(f"style.path={path}", "style.size=20").style)
    assert style.shape == (1, 3, 10, 20) and style.dtype == torch.float32
    assert style.min() >= 0 and style.max() <= 1
    # Left is dark, right is bright, whatever the bit depth: 16-bit is scaled by 65535, not 255.
    assert style[..., :2].mean() < 0.15 and style[..., -2:].mean() > 0.85


def test_unreadable_and_missing_images(tmp_path, make_cfg):
    text = tmp_path / "painting.jpg"
    text.write_text("not an image")
    with pytest.raises(MeshStyleError, match="cannot read style image"):
        load_style(make_cfg(f"style.path={text}").style)
    with pytest.raises(MeshStyleError, match="style image not found"):
        load_style(make_cfg(f"style.path={tmp_path / 'nope.png'}").style)
    with pytest.raises(MeshStyleError, match="style.size"):
        load_style(make_cfg(f"style.path={text}", "style.size=4").style)
