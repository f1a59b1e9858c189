"""The config schema: every setting's type, default, one-line doc, choices and range, in one place.

Hydra composes ``configs/`` onto these dataclasses (registered in its ConfigStore by
:func:`register`), so a wrongly typed value (``optim.steps=abc``) fails while the config is composed;
:func:`validate` then checks choices, ranges and shapes. Both happen before any file is read, any
weight loaded or torch imported. ``configs/`` holds only the group options (``loss=fine``,
``backbone=vgg16_hed``, ``preset=fast``); ``mesh-style --help`` lists the docs below.

This module imports no torch: the command line validates with it before the heavy imports.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig

from mesh_style.errors import MeshStyleError

#: Style losses (mesh_style.style_losses.STYLE_KINDS holds their modules; a test keeps the two equal).
STYLE_KINDS = ("gram", "w2", "swd", "nnfm")
#: Default style layers: every VGG block's first ReLU, plus the image itself (palette).
STYLE_LAYERS = {"rgb": 1.0, "relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}


def setting(
    default: Any,
    doc: str,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    hint: str = "",
) -> Any:
    """A dataclass field with its doc and checks: ``choices``, ``low <= value <= high``,
    ``value > above``; ``hint`` is the fix shown after a failed range check."""
    metadata = {"doc": doc, "choices": choices, "low": low, "high": high, "above": above, "hint": hint}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def group(cls: type) -> Any:
    return field(default_factory=cls)


@dataclass
class UnwrapConfig:
    padding: int = setting(4, "texels between charts", low=0)
    resolution: int = setting("${mesh.blank_texture_size}", "atlas size of untextured parts (the padding refers to it); "
                              "a baked texture keeps its own size", low=16, high=8192)
    when: str = setting("stretched", "missing: only parts without usable UVs | stretched: also the parts of a material whose UVs stretch "
                        "texels more than 3:1 over a fifth of their surface (they show stripes), its texture baked onto the new "
                        "UVs | always: every part", choices=("missing", "stretched", "always"))


@dataclass
class MeshConfig:
    path: Optional[str] = setting(None, "GLB, glTF, OBJ (+MTL) or PLY; meshes without UVs are unwrapped")
    blank_texture_size: int = setting(512, "texture made for untextured materials and unwrapped meshes", low=16, high=8192)
    blank_color: List[float] = setting([0.8, 0.8, 0.8], "its colour when the material has no base colour either")
    missing_texture: str = setting("error", "an OBJ's missing or broken .mtl or map_Kd texture: error | blank (its base colour, with a warning)",
                                   choices=("error", "blank"))
    unwrap: UnwrapConfig = group(UnwrapConfig)  # automatic UVs (xatlas) for meshes without them


@dataclass
class StyleConfig:
    path: Any = setting(None, "any image Pillow reads (JPEG, PNG, WebP…); a list blends several: [a.jpg,b.jpg]")
    weights: Optional[List[float]] = setting(None, "blend weights, one per painting (null: equal), e.g. [0.7,0.3]")
    size: int = setting(512, "long side in pixels; relative to render.image_size it sets the brush-stroke scale", low=16, high=4096)
    colour: str = setting("transfer", "transfer: the painting's palette | preserve: the original's colours, the painting's strokes",
                          choices=("transfer", "preserve"))
    colour_method: str = setting(
        "luminance",
        "how preserve works: luminance (style matched on luma, the original's chroma kept) | histogram (the painting "
        "recoloured to the original's colour mean and covariance)",
        choices=("luminance", "histogram"),
    )
    recolour_start: bool = setting(
        True, "start from (and keep the layout of) the original recoloured to the painting's colour mean and covariance "
        "(ARF), its light and dark in their order (luma mapped alone); colour=transfer only"
    )
    recolour_end: float = setting(
        1.0, "move the result's colours this far (0-1) onto the paintings' whole colour distribution, their minority hues "
        "(and, with recolour_end_luma=move, their darks and brights) by sliced optimal transport; colour=transfer only", low=0, high=1
    )
    recolour_mid: float = setting(
        0.67, "also make recolour_end's move once this fraction of optim.steps is done; the remaining steps go on from "
        "the moved colours, placing the palette's hues and smoothing the move's texel-scale noise (0 or 1: only at the end)",
        low=0, high=1
    )
    recolour_end_luma: str = setting(
        "keep", "keep: each texel keeps its light and dark, only hue and saturation move (layout and strokes stay) | "
        "move: the darks and brights move too (the painting's contrast, less of the layout)", choices=("keep", "move")
    )
    chroma_blur: float = setting(
        3.0, "σ in rendered pixels of a last blur of the result's chroma, its luma kept: colour speckle finer than "
        "the painting's goes, the strokes stay (0: off); colour=preserve with colour_method=luminance keeps the original's", low=0
    )


@dataclass
class ViewsConfig:
    num: int = setting(24, "cameras in the optimisation bank (each rasterised once)", low=1)
    held_out: int = setting(4, "extra cameras never optimised on: metrics.json and preview.png use them", low=1)
    per_step: int = setting(4, "views rendered per optimisation step, drawn at random from the bank (at most num)", low=1)
    elev: List[float] = setting([-15.0, 45.0], "elevation range in degrees, [low, high] within [-90, 90]")
    azim: List[float] = setting([0.0, 360.0], "azimuth range in degrees, [low, high]")
    fov: float = setting(40.0, "vertical field of view in degrees", above=0, high=179.9)
    margin: float = setting(1.05, "camera distance = margin / sin(fov / 2) × bounding-sphere radius", low=1.0,
                            hint="below 1 the mesh is cut off at the frame edge")


@dataclass
class RenderConfig:
    image_size: int = setting(256, "renders are image_size × image_size", low=16, high=4096)
    ambient: float = setting(0.8, "shading = ambient + diffuse × |cos(normal, view)| (headlight)", low=0)
    diffuse: float = setting(0.2, "mild, so the texture itself carries the painting's colours", low=0)
    background: List[float] = setting([1.0, 1.0, 1.0], "RGB behind the mesh; the style loss only sees mesh pixels anyway")
    rasterizer: str = setting("auto", "auto (zbuffer on CPU, pytorch3d on GPU) | zbuffer | pytorch3d",
                              choices=("auto", "zbuffer", "pytorch3d"))


@dataclass
class LossConfig:
    style_weight: float = setting(3.0, "the painting's pull: more paints more and keeps less of the original's layout",
                                  low=0, hint="0 turns it off")
    content_weight: float = setting(1.0, "the original's pull: keeps the layout of its textured parts (only the ratio to style_weight matters)",
                                    low=0, hint="0 turns it off")
    tv_weight: float = setting(2.0, "smooths neighbouring texels", low=0, hint="0 turns it off")
    chroma_weight: float = setting(30.0, "hue smoothness between neighbouring rendered pixels: less colour speckle", low=0,
                                   hint="0 turns it off")
    chroma_edge: float = setting(0.05, "chroma step (Cb/Cr) beyond which that smoothness costs less and less: colour edges survive",
                                 above=0, hint="large (e.g. 10) = plain L1, which merges colour regions")
    seam_weight: float = setting(300.0, "colour agreement across UV seams (where two charts of the atlas meet on the surface): "
                                 "no step of colour along them; the seams are also levelled after the loop", low=0,
                                 hint="0 turns both off")
    style_kind: str = setting("gram", "gram | w2 (mean and covariance) | swd (sliced Wasserstein) | nnfm (nearest neighbours)",
                              choices=STYLE_KINDS)
    content_layer: str = setting("relu2_2", "VGG layer whose features the content loss compares (relu2_2 holds lettering "
                                 "and thin parts; relu4_2, coarser, only the broad layout)")
    style_layers: Dict[str, float] = setting(STYLE_LAYERS, "{layer: weight}, normalised to sum to 1 (new layers need +)")
    long_range_weight: float = setting(3.0, "weight, relative to the style loss, of the painting's correlations between features "
                                       "8-32 rendered pixels apart (Berger & Memisevic 2017): swirls and longer strokes "
                                       "instead of a fine crackle (0: off, the Gram matrices alone)", low=0)
    facing_power: float = setting(0.0, "gradient × |cos(normal, view)|^facing_power: grazing views teach less (0 = off)", low=0)
    background: str = setting("mean", "behind the mesh in the renders the losses see: mean (each view's mean mesh colour) | render",
                              choices=("mean", "render"))
    eval_chunk: int = setting(4, "views per batch when computing targets and held-out metrics", low=1)


@dataclass
class OptimConfig:
    steps: int = setting(300, "Adam steps, each on views.per_step views", low=0)
    lr: float = setting(0.1, "Adam step size on the texture's logits", above=0)
    pyramid_levels: int = setting(1, "1 + coarse offset levels; more move whole regions and lose the layout", low=1,
                                  hint="1 = no coarse levels")
    texels_per_pixel: float = setting(1.0, "detail kept per rendered pixel side: finer than the renders can teach speckles", above=0,
                                      hint="1 = as fine as the renders")
    level_decay: float = setting(1.0, "each coarser level's step size relative to the next finer one", above=0, high=1,
                                 hint="1 = every level at full speed")
    average: float = setting(0.95, "the result is a moving average of the steps' textures with this decay: "
                             "step-to-step noise averages out", low=0, high=0.999, hint="0 = the last step's texture")
    texture_size: Any = setting("auto", "auto: enlarged (up to 2048) until a rendered pixel covers a texel | null: original | a size")
    checkpoint_every: int = setting(50, "save the optimisation's state every N steps into the run folder, for resume=true (0: never)",
                                    low=0)


@dataclass
class BackboneConfig:
    name: str = setting("auto", "auto | vgg19_imagenet | vgg16_hed | path/to/torchvision_vgg_state_dict.pth")
    precision: str = setting("auto", "auto (bfloat16 on CPUs with AMX, else float32) | float32 | bfloat16",
                             choices=("auto", "float32", "bfloat16"))


@dataclass
class TurntableConfig:
    frames: int = setting(36, "views in the turn (0: no turntable.gif)", low=0)
    size: int = setting(256, "pixels per view", low=16, high=4096)
    elev: float = setting(15.0, "camera elevation in degrees", low=-90, high=90)
    seconds: float = setting(6.0, "length of one turn", above=0)


@dataclass
class ExportConfig:
    formats: List[str] = setting(["glb", "obj"], "glb: <name>_stylized.glb (embedded PNG) | obj: .obj + .mtl + .png")
    gutter: int = setting(4, "texels grown around every seen UV region before the rest is filled (push-pull)", low=0)
    reference_size: int = setting(128, "held_out_<i>.png: unlit renders of the held-out views (for scripts/blender_check.py)",
                                  low=16, high=4096)
    history: bool = setting(True, "history.csv (every step's losses) and losses.png (their curves)")
    texture_compare: bool = setting(True, "texture_compare.png: each original texture atlas beside its stylised one")
    turntable: TurntableConfig = group(TurntableConfig)  # turntable.gif: one full turn, original left, result right


@dataclass
class Config:
    mesh: MeshConfig = group(MeshConfig)
    style: StyleConfig = group(StyleConfig)
    views: ViewsConfig = group(ViewsConfig)
    render: RenderConfig = group(RenderConfig)
    loss: LossConfig = group(LossConfig)
    optim: OptimConfig = group(OptimConfig)
    backbone: BackboneConfig = group(BackboneConfig)
    export: ExportConfig = group(ExportConfig)
    seed: int = setting(0, "same seed + same config ⇒ same texture (on CPU)")
    device: str = setting("auto", "auto (CUDA when present) | cpu | cuda", choices=("auto", "cpu", "cuda"))
    resume: bool = setting(False, "continue the stopped run in hydra.run.dir from its checkpoint (same settings)")


def register() -> None:
    """Put the schema into Hydra's ConfigStore as ``schema``, the first entry of configs/config.yaml."""
    ConfigStore.instance().store(name="schema", node=Config)


def _is_group(f: dataclasses.Field) -> bool:
    return dataclasses.is_dataclass(f.default_factory)


def settings(cls: type = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """``(key, default, doc)`` of every setting, in declaration order (``mesh-style --help``)."""
    out = []
    for f in dataclasses.fields(cls):
        if _is_group(f):
            out += settings(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, _default(f), f.metadata["doc"]))
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default if f.default_factory is dataclasses.MISSING else f.default_factory()


def _fail(key: str, value: Any, requirement: str, fix: str) -> None:
    shown = list(value) if isinstance(value, ListConfig) else dict(value) if isinstance(value, DictConfig) else value
    raise MeshStyleError(f"{key}={shown} {requirement} ({fix})")


def _check_field(key: str, value: Any, f: dataclasses.Field) -> None:
    meta, fix = f.metadata, f"the default is {_default(f)}"
    if meta["choices"] and value not in meta["choices"]:
        _fail(key, repr(value), f"is not one of {', '.join(meta['choices'])}", fix)
    low, high, above = meta["low"], meta["high"], meta["above"]
    if low is None and high is None and above is None:
        return
    words = [f">= {low}" if low is not None else "", f"> {above}" if above is not None else "", f"<= {high}" if high is not None else ""]
    ok = math.isfinite(value) and (low is None or value >= low) and (above is None or value > above) and (high is None or value <= high)
    if not ok:  # NaN and inf fail here too
        _fail(key, value, "must be a finite number " + " and ".join(w for w in words if w), meta["hint"] or fix)


def _walk(cls: type, cfg: DictConfig, prefix: str) -> None:
    for f in dataclasses.fields(cls):
        if _is_group(f):
            _walk(f.default_factory, cfg[f.name], f"{prefix}{f.name}.")
        else:
            _check_field(prefix + f.name, cfg[f.name], f)


def _check_range_pair(key: str, pair: Any, low: float, high: float) -> None:
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        _fail(key, pair, f"must be [low, high] with {low} <= low <= high <= {high}", f"e.g. {key}=[{max(low, -15)},{min(high, 45)}]")


def _check_rgb(key: str, colour: Any) -> None:
    if len(colour) != 3 or not all(0 <= c <= 1 for c in colour):
        _fail(key, colour, "must be three numbers in [0, 1]", f"red, green, blue: e.g. {key}=[1,1,1]")


def style_paths(cfg: DictConfig) -> list[str]:
    """``cfg.path`` (the ``style`` group) as a list: one painting or several."""
    if cfg.path is None:
        raise MeshStyleError("no style image given (mesh-style MESH PAINTING, or style.path=painting.jpg)")
    return [str(p) for p in cfg.path] if isinstance(cfg.path, (list, ListConfig)) else [str(cfg.path)]


def blend_weights(cfg: DictConfig) -> list[float]:
    """The ``style`` group's blend weights, one per painting, summing to 1."""
    paths = style_paths(cfg)
    if not paths:
        raise MeshStyleError("style.path=[] holds no painting (give one path, or a list: style.path=[a.jpg,b.jpg])")
    weights = [1.0] * len(paths) if cfg.weights is None else list(cfg.weights)
    if len(weights) != len(paths):
        raise MeshStyleError(f"style.weights has {len(weights)} values for {len(paths)} paintings (give one per painting, or null for equal)")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        _fail("style.weights", weights, "must be finite numbers >= 0, not all 0", "e.g. style.weights=[0.7,0.3], or null for equal")
    return [w / sum(weights) for w in weights]


def active_style_layers(cfg: DictConfig) -> dict[str, float]:
    """The ``loss`` group's style layers with a weight > 0."""
    layers = {layer: float(w) for layer, w in cfg.style_layers.items() if w != 0}
    if not layers or not all(0 < w < math.inf for w in layers.values()):
        _fail("loss.style_layers", cfg.style_layers, "needs finite weights >= 0, at least one > 0", "0 drops a layer: loss.style_layers.relu5_1=0")
    return layers


def texture_size(value: Any) -> tuple[int, int] | str | None:
    """``optim.texture_size`` as ``auto``, ``None`` (keep the original) or ``(height, width)``."""
    if value is None or value == "auto":
        return value
    size = tuple(value) if isinstance(value, (list, ListConfig)) else (value, value)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 8192 for s in size):
        _fail("optim.texture_size", value, "must be auto, null, a size in texels or [height, width], each 8 to 8192",
              "null keeps the original size")
    return size


def require_inputs(cfg: DictConfig) -> None:
    """A mesh and a painting are given (not that they exist: the run reads them)."""
    if cfg.mesh.path is None:
        raise MeshStyleError("no mesh given (mesh-style MESH PAINTING, or mesh.path=model.glb: GLB, glTF, OBJ or PLY)")
    style_paths(cfg.style)


def validate(cfg: DictConfig) -> None:
    """Every choice, range and shape of a composed config; raises :class:`MeshStyleError` naming
    the key and the fix. Types were already checked by Hydra against :class:`Config`."""
    require_inputs(cfg)
    _walk(Config, cfg, "")
    _check_range_pair("views.elev", cfg.views.elev, -90, 90)
    _check_range_pair("views.azim", cfg.views.azim, -math.inf, math.inf)
    _check_rgb("render.background", cfg.render.background)
    _check_rgb("mesh.blank_color", cfg.mesh.blank_color)
    if not cfg.export.formats or not set(cfg.export.formats) <= {"glb", "obj"}:
        _fail("export.formats", cfg.export.formats, "must list glb and/or obj", "e.g. export.formats=[glb]")
    blend_weights(cfg.style)
    active_style_layers(cfg.loss)
    texture_size(cfg.optim.texture_size)

