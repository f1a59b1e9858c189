"""Style input: every image kind Pillow reads becomes (1, 3, H, W) RGB in [0, 1]; blends; colour options."""

import numpy as np
import pytest
import torch
from PIL import Image

from mesh_style import schema
from mesh_style.errors import MeshStyleError
from mesh_style.images import blur_chroma, chroma, keep_chroma, luminance, quantize
from mesh_style.style import LUMA_STRETCH_MAX, load_style, match_colours, recolour_layout_kept, recoloured, transport_colours


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
    paintings = load_style(make_cfg(f"style.path={path}", "style.size=20").style)
    assert paintings.weights == [1.0]
    style, = paintings.images
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
        schema.validate(make_cfg("mesh.path=m.glb", f"style.path={text}", "style.size=4"))


def test_several_paintings_with_weights(tmp_path, make_cfg):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (40, 20), "red").save(a)
    Image.new("RGB", (10, 30), "blue").save(b)
    paintings = load_style(make_cfg(f"style.path=[{a},{b}]", "style.weights=[3,1]", "style.size=20").style)
    assert [tuple(p.shape) for p in paintings.images] == [(1, 3, 10, 20), (1, 3, 20, 7)]
    assert paintings.weights == [0.75, 0.25]
    assert load_style(make_cfg(f"style.path=[{a},{b}]").style).weights == [0.5, 0.5]  # null: equal


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (["style.weights=[1]"], "1 values for 2 paintings"),
        (["style.weights=[1,-1]"], "must be finite numbers >= 0"),
        (["style.weights=[0,0]"], "not all 0"),
        (["style.colour=keep"], "style.colour='keep'"),
        (["style.colour=preserve", "style.colour_method=lab"], "style.colour_method='lab'"),
    ],
)
def test_bad_blends_and_colour_options(tmp_path, make_cfg, overrides, fragment):
    a = tmp_path / "a.png"
    Image.new("RGB", (8, 8), "red").save(a)
    cfg = make_cfg("mesh.path=m.glb", f"style.path=[{a},{a}]", *overrides)
    with pytest.raises(MeshStyleError, match=fragment.replace("[", r"\[")):
        schema.validate(cfg)
    if overrides[0].startswith("style.weights"):  # the loader checks its own input too (API callers)
        with pytest.raises(MeshStyleError, match=fragment.replace("[", r"\[")):
            load_style(cfg.style)


def test_keep_chroma_keeps_the_luma_and_the_original_hue():
    """The texels' own luma always; the original's chroma exactly where it fits in the RGB cube,
    scaled down (same hue) where it would not, so dark and light strokes pass on saturated colours."""
    torch.manual_seed(0)
    original = torch.rand(1000, 3)
    texels = torch.rand(1000, 3)
    kept = keep_chroma(texels, original)
    luma = torch.tensor([0.299, 0.587, 0.114])
    assert torch.allclose(kept @ luma, texels @ luma, atol=1e-6)
    assert kept.min() >= -1e-6 and kept.max() <= 1 + 1e-6
    offsets, kept_offsets = original - (original @ luma)[:, None], kept - (kept @ luma)[:, None]
    scale = (kept_offsets * offsets).sum(1) / (offsets * offsets).sum(1)
    assert torch.allclose(kept_offsets, scale[:, None] * offsets, atol=1e-5)  # the same hue
    assert scale.min() >= 0 and scale.max() <= 1 + 1e-6
    fits = ((texels @ luma)[:, None] + offsets).clamp(0, 1).eq((texels @ luma)[:, None] + offsets).all(1)
    assert 100 < fits.sum() < 1000 and torch.allclose(scale[fits], torch.ones(int(fits.sum())), atol=1e-5)
    # Pure yellow, darkened to luma 0.2: a dark yellow, not the clamped luma 0.68 of keeping chroma whole.
    dark = keep_chroma(torch.full((1, 3), 0.2), torch.tensor([[1.0, 1.0, 0.0]]))
    assert torch.allclose(dark @ luma, torch.tensor([0.2])) and dark[0, 0] == dark[0, 1] > dark[0, 2]


def test_blur_chroma_keeps_the_luma_and_strokes_and_smooths_colour_noise():
    """A luma ramp with a hue step (red-ish left half, blue-ish right half, same luma) under
    per-pixel colour noise: the luma is untouched, the noise falls as a σ = 2 Gaussian averages
    white noise (its std by 2 √π σ ≈ 7×, so below a quarter), and the hue step survives away from it."""
    torch.manual_seed(0)
    luma_weights = torch.tensor([0.299, 0.587, 0.114])
    luma = torch.linspace(0.35, 0.65, 64).expand(64, 64)
    hue = torch.tensor([0.08, -0.03, -0.05])  # luma-free: 0.299·0.08 − 0.587·0.03 − 0.114·0.05 ≈ 0
    hue = hue - (hue @ luma_weights) / (luma_weights @ luma_weights) * luma_weights
    step = torch.where(torch.arange(64) < 32, 1.0, -1.0)[None, :, None] * hue
    noise = 0.05 * torch.randn(64, 64, 3)
    noise = noise - (noise @ luma_weights)[..., None] / (luma_weights @ luma_weights) * luma_weights
    image = luma[..., None] + step + noise
    out = blur_chroma(image, 2.0)
    assert torch.allclose(out @ luma_weights, image @ luma_weights, atol=1e-5)
    clean = luma[..., None] + step
    inside = torch.cat([torch.arange(6, 26), torch.arange(38, 58)])  # 3 σ from the step and the borders
    residual = (out - clean)[6:58][:, inside]
    assert residual.std() < 0.25 * noise[6:58][:, inside].std()
    assert residual.abs().mean() < 0.01  # the two hues are kept, not mixed
    assert torch.equal(blur_chroma(image, 0.0), image)


def test_quantize_picks_the_8_bit_colour_nearest_in_chroma():
    """By hand: (10.4, 10.4, 10.6) levels rounds per channel to (10, 10, 11), a blue tint (error
    (−0.4, −0.4, 0.4): Cb 0.40); (10, 10, 10) leaves Cb −0.10, Cr 0.02 and wins. On random colours:
    8-bit levels within one of the input, exact levels kept, less chroma error than rounding."""
    assert torch.equal(quantize(torch.tensor([10.4, 10.4, 10.6]) / 255) * 255, torch.tensor([10.0, 10.0, 10.0]))
    torch.manual_seed(0)
    colours = torch.rand(4096, 3)
    levels = quantize(colours) * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4) and levels.min() >= 0 and levels.max() <= 255
    assert ((levels - colours * 255).abs() < 1).all()
    exact = torch.randint(0, 256, (256, 3)).float() / 255
    assert torch.equal(quantize(exact), exact)

    def chroma_error(q: torch.Tensor) -> torch.Tensor:
        return chroma((q - colours).T[None, :, :, None]).square().sum(1).mean().sqrt()

    assert chroma_error(quantize(colours)) < 0.85 * chroma_error((colours * 255).round() / 255)


def test_recoloured_takes_the_colour_mean_and_covariance_of_the_pixels():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 32, 32) * 0.5
    pixels = torch.rand(5000, 3) @ torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.2, 0.05], [0.0, 0.0, 0.1]]) + 0.3
    out = recoloured(image, pixels)[0].flatten(1).T
    assert torch.allclose(out.mean(0), pixels.mean(0), atol=1e-4)
    assert torch.allclose(torch.cov(out.T), torch.cov(pixels.T), atol=1e-4)


NAVY, YELLOW = torch.tensor([0.1, 0.15, 0.4]), torch.tensor([0.95, 0.85, 0.3])


def _pale_ramp() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A texture in one pale hue ``(5000, 3)``, which of its texels are in its darker half, and a
    palette of half navy and half yellow."""
    ramp = 0.4 + 0.2 * torch.rand(5000, 1, generator=torch.Generator().manual_seed(1))
    palette = torch.cat([NAVY.expand(3000, 3), YELLOW.expand(3000, 3)])
    return ramp * torch.tensor([0.9, 1.0, 1.0]), ramp[:, 0] < ramp.median(), palette


def _column(rows: torch.Tensor) -> torch.Tensor:
    """``(R, 3)`` colours as a ``(1, 3, R, 1)`` image, for the image colour functions."""
    return rows.T[None, :, :, None]


def test_recolour_layout_kept_maps_the_luma_by_hand():
    """Greys of luma 0.2, 0.4, 0.6 (mean 0.4, deviation 0.2) onto a palette of greys 0.5 and 0.7
    (mean 0.6, deviation 0.1414): lumas 0.6 + 0.7071 · (−0.2, 0, 0.2), and still grey."""
    rows = torch.tensor([0.2, 0.4, 0.6])[:, None].expand(3, 3)
    palette = torch.tensor([0.5, 0.7])[:, None].expand(2, 3)
    expected = torch.tensor([0.4586, 0.6, 0.7414])[:, None].expand(3, 3)
    assert torch.allclose(recolour_layout_kept(rows, rows, palette), expected, atol=1e-4)


def test_recolour_layout_kept_stretches_a_nearly_flat_texture_at_most_by_the_cap():
    """Nine greys of luma 0.8 and one of 0.7 (mean 0.79, deviation 0.0316) onto greys 0.1 and 0.9
    (mean 0.5, deviation 0.566): the deviations' ratio, 17.9, would put the darker grey at -1.1,
    clipped to black; capped at 1.25 it maps to 0.5 + 1.25 · (0.7 - 0.79) = 0.3875, the others to 0.5125."""
    rows = torch.tensor([0.8] * 9 + [0.7])[:, None].expand(10, 3)
    palette = torch.tensor([0.1, 0.9])[:, None].expand(2, 3)
    assert LUMA_STRETCH_MAX == 1.25
    expected = torch.tensor([0.5125] * 9 + [0.3875])[:, None].expand(10, 3)
    assert torch.allclose(recolour_layout_kept(rows, rows, palette), expected, atol=1e-4)


def test_recolour_layout_kept_keeps_light_and_dark_where_the_covariance_match_swaps_them():
    """A photo's bright blue sky and dark red tower, recoloured to an orange and navy palette: the
    mean-and-covariance match alone turns the sky darker than the tower (the layout the content
    loss then keeps is gone); the layout-kept start keeps the sky brighter, in the match's hues."""
    generator = torch.Generator().manual_seed(0)

    def around(*colours: list[float]) -> torch.Tensor:
        return torch.cat([torch.tensor(c) + 0.03 * torch.randn(500, 3, generator=generator) for c in colours]).clamp(0, 1)

    photo, palette = around([0.55, 0.7, 0.95], [0.7, 0.15, 0.1]), around([0.95, 0.5, 0.1], [0.1, 0.15, 0.35])

    def sky_minus_tower(rows: torch.Tensor) -> float:
        luma = luminance(_column(rows))[0, :, 0]
        return float(luma[:500].mean() - luma[500:].mean())

    assert sky_minus_tower(match_colours(photo, photo, palette)) < 0
    kept = recolour_layout_kept(photo, photo, palette)
    assert sky_minus_tower(kept) > 0.3
    # The hues are the covariance match's, desaturated only where its chroma does not fit the new luma.
    hue, matched_hue = (chroma(_column(x))[0, :, :, 0].T for x in (kept, match_colours(photo, photo, palette)))
    assert (torch.cosine_similarity(hue, matched_hue) > 0.999).all()
    assert (hue.norm(dim=1) <= matched_hue.norm(dim=1) + 1e-5).all()


def test_transport_colours_gives_a_pale_texture_the_paintings_two_hues_by_rank():
    """A texture in one pale hue, moved onto a palette of half navy and half yellow: its darker half
    turns navy and its brighter half yellow. A mean-and-covariance match could only stretch the
    grey ramp along the line between them; the transport reproduces the two colours themselves."""
    pale, darker, palette = _pale_ramp()
    out = transport_colours(pale, pale, palette)
    assert ((out[darker] - NAVY).norm(dim=1) < 0.1).float().mean() > 0.98
    assert ((out[~darker] - YELLOW).norm(dim=1) < 0.1).float().mean() > 0.98


def test_transport_colours_keeping_luma_moves_only_the_hue():
    """The same pale ramp moved with ``keep_luma``: every texel keeps its luma, so the ramp's light
    and dark stay, while its darker half takes navy's hue (blue above luma, Cb > 0) and its brighter
    half yellow's (Cb < 0), as far from grey as the painting's colours are."""
    pale, darker, palette = _pale_ramp()
    out = transport_colours(pale, pale, palette, keep_luma=True)
    assert torch.allclose(luminance(_column(out)), luminance(_column(pale)), atol=1e-5)
    blue_difference = chroma(_column(out))[0, 0, :, 0]  # Cb
    assert (blue_difference[darker] > 0.1).float().mean() > 0.95
    assert (blue_difference[~darker] < -0.1).float().mean() > 0.95


def test_transport_colours_leaves_colours_already_in_the_palette_in_place():
    """Source and target from one distribution: the map is the identity, up to the sampling of the
    quantiles, and the same seed gives the same colours."""
    colours = torch.rand(8000, 3, generator=torch.Generator().manual_seed(2))
    palette = torch.rand(8000, 3, generator=torch.Generator().manual_seed(3))
    out = transport_colours(colours, colours, palette)
    assert (out - colours).abs().mean() < 0.01
    assert torch.equal(out, transport_colours(colours, colours, palette))
