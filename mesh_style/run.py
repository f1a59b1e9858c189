"""``run(cfg, out_dir)``: the whole job, from input files to outputs. The CLI and tests call it."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import json
import logging
import os
import resource
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from mesh_style.backbone import LuminanceOnly, VGGFeatures, backbone_dtype, load_backbone
from mesh_style.checkpoint import Checkpoint, trajectory_settings
from mesh_style.errors import MeshStyleError
from mesh_style.export import export_scene, staged_outputs, write_history, write_json, write_reference_views
from mesh_style.images import beside, image_grid, quantize, save_gif, tensor_to_pil, texture_compare
from mesh_style.layout import CHECKPOINT_FILE, RESULT_DIR
from mesh_style.mesh import Mesh, load_mesh
from mesh_style.optimize import Objective, build_objective, optimize
from mesh_style.quality import (
    FIGURE_LAYERS, FigurePainting, colour_distance, grey_style_distance, speckle, stroke_style_distance, structure, style_distance,
)
from mesh_style.rasterizer import rasterize
from mesh_style.schema import active_style_layers, texture_size, validate
from mesh_style.seams import level_seams, seam_taps
from mesh_style.shader import ViewCache, build_view_cache, shade, shown_colours
from mesh_style.style import Paintings, load_style, recolour_layout_kept, recoloured, transport_colours
from mesh_style.style_losses import LONG_RANGE_SHIFTS
from mesh_style.textures import blur_chroma_texels, fill_unseen_texels, flat_texels, seen_texels, taught_texels, texel_footprint
from mesh_style.views import Views, sample_views, turntable_views

log = logging.getLogger(__name__)

PREVIEW_VIEWS = 4
#: Smallest side of a view in preview.png, whatever the training size.
PREVIEW_SIZE = 256
#: Close-ups for the speckle figure are rendered this many times larger than training renders,
#: up to CLOSE_UP_MAX pixels.
CLOSE_UP = 4
CLOSE_UP_MAX = 2048


#: The phases of a run, in order.
PHASES = ("load", "rasterize", "targets", "optimize", "evaluate", "export")


class PhaseTimer:
    """Wall-clock seconds per named phase, logged, and on a terminal a bar over the phases of
    :data:`PHASES` that stays on screen with the total time (the optimisation's own bar runs below it).

    Args:
        file: where the bar is drawn (default stderr; drawn only on a terminal unless ``force``).
        force: draw it whatever ``file`` is (tests).
    """

    def __init__(self, file: TextIO | None = None, force: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self.bar = tqdm(total=len(PHASES), file=file, disable=False if force else None, position=0,
                        bar_format="mesh-style: {desc} [{n}/{total} phases, {elapsed}]")

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self.bar.set_description_str(phase)
        start = time.perf_counter()
        try:
            yield
        except BaseException:  # the error's one line is all that stays on screen
            self.bar.leave = False
            self.bar.close()
            raise
        self.seconds[phase] = round(time.perf_counter() - start, 3)
        log.info("%s: %.1f s", phase, self.seconds[phase])
        self.bar.update(1)

    def close(self) -> None:
        """The bar's last state: done, with the total time."""
        self.bar.set_description_str(f"done in {sum(self.seconds.values()):.0f} s")
        self.bar.close()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MeshStyleError("device=cuda but no CUDA GPU is visible (use device=cpu or device=auto)")
    return torch.device(name)


#: ``optim.texture_size=auto`` enlarges textures up to this size.
AUTO_TEXTURE_MAX = 2048
#: Texels per rendered pixel side above which a run warns that the texture is far finer than the renders.
FAR_FINER = 4.0
#: Rendered pixels over which the seam levelling's correction fades into each UV chart.
SEAM_REACH = 4.0


def resize_texture(texture: torch.Tensor, size: tuple[int, int] | int | None) -> torch.Tensor:
    """``(H, W, 3)`` → ``(size, size, 3)`` or ``(*size, 3)`` (bilinear, antialiased); ``None`` keeps it."""
    size = (size, size) if isinstance(size, int) else size
    if size is None or texture.shape[:2] == size:
        return texture
    image = F.interpolate(texture.permute(2, 0, 1)[None], size=size, mode="bilinear", antialias=True, align_corners=False)
    return image[0].permute(1, 2, 0).clamp(0, 1).contiguous()


def material_footprints(mesh: Mesh, cache: ViewCache) -> list[float | None]:
    """Median texels per rendered pixel side over the pixels that show each material (``None``
    where none does)."""
    offsets = torch.tensor(mesh.layout.offsets + (mesh.layout.num_texels,), device=cache.index.device)
    material = torch.bucketize(cache.index[:, 0].long(), offsets, right=True) - 1
    return [seen.median().item() if len(seen := cache.footprint[material == m]) else None for m in range(len(mesh.layout.sizes))]


def matched_sizes(mesh: Mesh, cache: ViewCache) -> list[tuple[int, int]]:
    """``optim.texture_size=auto``: each texture enlarged (never shrunk, at most
    :data:`AUTO_TEXTURE_MAX` on its long side) until its median rendered pixel covers at least one
    texel. Coarser textures show each texel as a block of pixels, which the style loss fills with
    hard-edged strokes; finer ones are handled by the level of detail (``TexturePyramid``)."""
    sizes = []
    for (height, width), footprint in zip(mesh.layout.sizes, material_footprints(mesh, cache)):
        scale = 1.0 / footprint if footprint else 1.0
        scale = min(max(scale, 1.0), AUTO_TEXTURE_MAX / max(height, width))
        sizes.append((max(height, round(height * scale)), max(width, round(width * scale))))
    return sizes


def render_cache(mesh: Mesh, views: Views, cfg: DictConfig, device: torch.device) -> ViewCache:
    """Rasterise every view once (``cfg`` is the ``render`` group) and keep what shading needs."""
    cameras = views.cameras(device)
    fragments = rasterize(mesh.verts.to(device), mesh.faces.to(device), cameras, cfg.image_size, cfg.rasterizer)
    return build_view_cache(fragments, mesh, cameras.get_camera_center(), cfg)


def reference_renders(
    mesh: Mesh, views: Views, texels: torch.Tensor, render_cfg: DictConfig, size: int, device: torch.device
) -> torch.Tensor:
    """Unlit ``(N, 4, size, size)`` RGBA renders (alpha = mesh mask), for checks by other renderers."""
    unlit = OmegaConf.merge(render_cfg, {"image_size": size, "ambient": 1.0, "diffuse": 0.0})
    cache = render_cache(mesh, views, unlit, device)
    rgb = shade(texels, cache, torch.zeros(3, device=device))
    return torch.cat([rgb, cache.mask[:, None].to(rgb)], 1)


def evaluate(
    objective: Objective, texels: torch.Tensor, cache: ViewCache, view_ids: torch.Tensor, chunk: int
) -> dict[str, float]:
    """Mean of each of the objective's losses over the views ``view_ids`` of ``cache``."""
    totals: dict[str, float] = {}
    with torch.inference_mode():
        for ids in view_ids.split(chunk):
            for name, values in objective(texels, cache, ids).items():
                totals[name] = totals.get(name, 0.0) + values.sum().item()
    return {name: total / len(view_ids) for name, total in totals.items()}


def figure_backbone() -> VGGFeatures | None:
    """The offline VGG16 the quality figures are defined with; None where it is not installed."""
    try:
        return load_backbone("vgg16_hed", FIGURE_LAYERS)[0]
    except MeshStyleError as error:
        log.info("quality figures without a style distance: %s", error)
        return None


def quality_figures(
    mesh: Mesh,
    views: Views,
    cache: ViewCache,
    textures: dict[str, torch.Tensor],
    paintings: Paintings,
    cfg: DictConfig,
    device: torch.device,
) -> dict[str, dict[str, float | None]]:
    """The figures of :mod:`mesh_style.quality` for each of ``textures`` (``{name: (T, 3)}``) seen
    through ``views`` (``cache`` holds them at training size), against the first texture's renders.

    Style distances are blended over the paintings by their weights, also in greyscale (the palette
    left out), over the mesh's positions only (``mesh_style_distance``: the figure's filled
    background weighs most where the object is small) and in grey with each view's brightness
    levelled to the painting's (``stroke_style_distance``: the light and dark pattern alone);
    colour distance and speckle are measured against the first painting.
    ``cfg`` is the whole config (render, style and figures' sizes).
    """
    extractor = figure_backbone()
    extractor = extractor.to(device) if extractor is not None else None
    background = torch.tensor(list(cfg.render.background), dtype=torch.float32, device=device)
    close_cfg = OmegaConf.merge(cfg.render, {"image_size": min(CLOSE_UP * cfg.render.image_size, CLOSE_UP_MAX)})
    close = render_cache(mesh, views, close_cfg, device)
    scale = close_cfg.image_size / cfg.render.image_size
    style_image = paintings.images[0]
    painting_close = F.interpolate(style_image, scale_factor=scale, mode="bilinear", align_corners=False, antialias=True)
    painting_pixels = style_image[0].flatten(1).T
    renders = {name: shade(t, cache, background) for name, t in textures.items()}
    reference = next(iter(renders.values()))
    figures = {}
    reference_pixels = reference.permute(0, 2, 3, 1)[cache.mask]
    targets = [FigurePainting(extractor, image) for image in paintings.images] if extractor is not None else []

    def blended(figure: Callable[..., float], images: torch.Tensor) -> float | None:
        if extractor is None:
            return None
        return sum(w * figure(extractor, images, cache.mask, p) for p, w in zip(targets, paintings.weights))

    for name, texels in textures.items():
        pixels = renders[name].permute(0, 2, 3, 1)[cache.mask]
        figures[name] = {
            "style_distance": blended(style_distance, renders[name]),
            "mesh_style_distance": blended(functools.partial(style_distance, over_mask=True), renders[name]),
            "grey_style_distance": blended(grey_style_distance, renders[name]),
            "stroke_style_distance": blended(stroke_style_distance, renders[name]),
            "structure": structure(renders[name], reference, cache.mask),
            "colour_distance": colour_distance(pixels, painting_pixels),
            "colour_distance_to_original": colour_distance(pixels, reference_pixels),
            "speckle": speckle(shade(texels, close, background), close.mask, painting_close),
        }
    return figures


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: resident set on CPU, allocated tensors on CUDA."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux


def preset() -> str | None:
    """The ``preset=`` chosen on the command line, when running under Hydra."""
    return HydraConfig.get().runtime.choices.get("preset") if HydraConfig.initialized() else None


def versions() -> dict[str, str]:
    """Versions of mesh-style and the packages its results depend on."""
    packages = {"mesh_style": "mesh_style", "torch": "torch", "torchvision": "torchvision", "pytorch3d": "easypytorch3d", "trimesh": "trimesh", "hydra": "hydra-core"}
    found = {}
    for name, distribution in packages.items():
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def turntable(mesh: Mesh, like: Views, original: torch.Tensor, texels: torch.Tensor, cfg: DictConfig, device: torch.device) -> list[Image.Image]:
    """Frames of one full turn (``cfg.export.turntable``), the original on the left, the result on
    the right, shaded as in training, at ``like``'s distance and field of view."""
    spec = cfg.export.turntable
    views = turntable_views(spec.frames, spec.elev, like)
    render_cfg = OmegaConf.merge(cfg.render, {"image_size": spec.size})
    background = torch.tensor(list(cfg.render.background), dtype=torch.float32, device=device)
    frames = []
    for start in range(0, spec.frames, cfg.loss.eval_chunk):  # a few views at a time: bounded memory
        cache = render_cache(mesh, views[start : start + cfg.loss.eval_chunk], render_cfg, device)
        pairs = torch.cat([shade(original, cache, background), shade(texels, cache, background)], -1)  # side by side
        frames += [tensor_to_pil(image.permute(1, 2, 0)) for image in pairs]
    return frames


def run(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Stylise ``cfg.mesh.path`` with ``cfg.style.path``; write results into ``out_dir``.

    The result (meshes, textures, previews, ``metrics.json``) appears whole in ``out_dir/result``;
    ``out_dir`` itself holds the checkpoint while the run is under way. Returns the metrics.
    """
    started = time.perf_counter()
    validate(cfg)
    style_layers = active_style_layers(cfg.loss)
    device = pick_device(cfg.device)
    dtype = backbone_dtype(cfg.backbone.precision, device)
    torch.manual_seed(cfg.seed)
    result_dir = out_dir / RESULT_DIR
    if (result_dir / "metrics.json").exists() and cfg.resume:  # e.g. a resumed sweep: this job had finished
        log.info("%s already holds the finished result", result_dir)
        return json.loads((result_dir / "metrics.json").read_text())
    if result_dir.exists():  # two runs' files must not mix
        raise MeshStyleError(f"{out_dir} already holds a result (choose another hydra.run.dir or out_dir, or delete {result_dir})")
    existing = next(p for p in (out_dir, *out_dir.parents) if p.exists())  # before any work, not after it
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise MeshStyleError(f"cannot write into {out_dir}: {existing} is not a writable folder (choose another hydra.run.dir or out_dir)")

    timer = PhaseTimer()
    with timer("load"):
        mesh = load_mesh(cfg.mesh)
        if cfg.optim.texture_size != "auto":
            mesh = dataclasses.replace(mesh, textures=[resize_texture(t, texture_size(cfg.optim.texture_size)) for t in mesh.textures])
        paintings = load_style(cfg.style).to(device)
        bank, held_out = sample_views(cfg.views, cfg.seed)

    with timer("rasterize"):
        cache = render_cache(mesh, bank.cat(held_out), cfg.render, device)
        if cfg.optim.texture_size == "auto" and (sizes := matched_sizes(mesh, cache)) != list(mesh.layout.sizes):
            log.info("textures enlarged to %s to match the renders (optim.texture_size=auto)", sizes)
            mesh = dataclasses.replace(mesh, textures=[resize_texture(t, s) for t, s in zip(mesh.textures, sizes)])
            cache = render_cache(mesh, bank.cat(held_out), cfg.render, device)
        train_cache = cache.select(slice(0, len(bank)))
        if (texels_per_pixel := cache.footprint.median().item()) > FAR_FINER:
            log.warning(
                "the textures hold %.1f texels per rendered pixel side: strokes are learned at the renders' "
                "resolution and detail finer than that is smoothed (raise render.image_size for finer strokes)",
                texels_per_pixel,
            )

    with timer("targets"):
        layers = sorted({*style_layers, cfg.loss.content_layer, *(LONG_RANGE_SHIFTS if cfg.loss.long_range_weight > 0 else ())})
        extractor, backbone = load_backbone(cfg.backbone.name, layers)
        extractor = extractor.to(device=device, dtype=dtype)
        background = torch.tensor(list(cfg.render.background), dtype=torch.float32, device=device)
        original = mesh.layout.flatten(mesh.textures).to(device)
        start, targets, chroma_of = original, paintings, None  # the texture optimised from, the paintings matched
        seen_colours = shown_colours(original, train_cache)
        if cfg.style.colour == "preserve" and cfg.style.colour_method == "luminance":
            extractor, chroma_of = LuminanceOnly(extractor), original  # style from luma; chroma stays the original's
        elif cfg.style.colour == "preserve":  # histogram: the paintings in the colours the renders show
            targets = dataclasses.replace(paintings, images=[recoloured(image, seen_colours) for image in paintings.images])
        elif cfg.style.recolour_start:  # ARF: the original in the paintings' palette is where it starts and what it keeps
            start = recolour_layout_kept(original, seen_colours, paintings.pixels())
        seams = seam_taps(mesh) if cfg.loss.seam_weight > 0 else None
        objective = build_objective(extractor, targets, start, cache, cfg.loss, background, seams, flat_texels(mesh.textures).to(device))

    with timer("optimize"):
        checkpoint = Checkpoint(out_dir / CHECKPOINT_FILE, cfg.optim.checkpoint_every, trajectory_settings(cfg))
        palette = cfg.style.colour == "transfer" and cfg.style.recolour_end > 0

        def to_palette(texels: torch.Tensor) -> torch.Tensor:
            # The objective settles near the paintings' dominant hue (a Gram matrix is nearly met by one
            # colour); their minority hues come back only by moving the colours the renders show. With
            # "keep" only hue and saturation move: the strokes and the layout, in the luma, stay.
            keep_luma = cfg.style.recolour_end_luma == "keep"
            moved = transport_colours(texels, shown_colours(texels, train_cache), paintings.pixels(), keep_luma, seed=cfg.seed)
            return texels.lerp(moved, cfg.style.recolour_end)

        # Moved part-way too, the last steps place the palette's hues (the move alone turns texel-scale
        # light and dark into hue: speckle) and the move at the end has less to do.
        texels, history = optimize(
            mesh.layout.unflatten(start), objective, train_cache, cfg.loss, cfg.optim, min(cfg.views.per_step, len(bank)), cfg.seed, chroma_of,
            checkpoint, cfg.resume, to_palette if palette and cfg.style.recolour_mid > 0 else None, round(cfg.style.recolour_mid * cfg.optim.steps),
        )
        if palette:
            texels = to_palette(texels)
        footprints = [f or 1.0 for f in material_footprints(mesh, train_cache)]
        # Texels the renders never taught kept their initial colour: fill them from their surroundings.
        # Between the sparse texels that a minified view reads, the level of detail taught the rest.
        taught = taught_texels(
            seen_texels(train_cache.index, train_cache.weight, mesh.layout.num_texels),
            texel_footprint(train_cache.index, train_cache.weight, train_cache.footprint, mesh.layout),
            mesh.layout,
        )
        texels = fill_unseen_texels(texels, taught, mesh.layout, cfg.export.gutter)
        if chroma_of is None and cfg.style.chroma_blur > 0:
            # The style loss leaves colour noise at the renders' pixel scale, busier than any painting's
            # (speckle, seen close up); the strokes are in the luma, which stays. After the filling, so
            # that the blur reads each UV island's own colours across its edges.
            texels = blur_chroma_texels(texels, mesh.layout, [cfg.style.chroma_blur * f for f in footprints])
        if seams is not None:
            # Those steps act on each UV chart alone and open the seams again: close them, the correction
            # fading into the charts over a few rendered pixels.
            texels = level_seams(texels, seams, mesh.layout, [SEAM_REACH * f for f in footprints])
        texels = quantize(texels)

    with timer("evaluate"):
        eval_ids = torch.arange(len(bank), len(cache), device=device)
        before = evaluate(objective, original, cache, eval_ids, cfg.loss.eval_chunk)
        after = evaluate(objective, texels, cache, eval_ids, cfg.loss.eval_chunk)
        shown = render_cache(mesh, held_out[:PREVIEW_VIEWS], OmegaConf.merge(cfg.render, {"image_size": max(PREVIEW_SIZE, cfg.render.image_size)}), device)
        preview = image_grid([shade(original, shown, background), shade(texels, shown, background)])
        for image in paintings.images:
            preview = beside(preview, tensor_to_pil(image[0].permute(1, 2, 0)))
        reference = reference_renders(mesh, held_out, texels, cfg.render, cfg.export.reference_size, device)
        figures = quality_figures(mesh, held_out, cache.select(eval_ids), {"original": original, "result": texels}, paintings, cfg, device)
        for distance, gain in (
            ("style_distance", "style_gain"), ("mesh_style_distance", "mesh_style_gain"), ("grey_style_distance", "grey_style_gain"),
            ("stroke_style_distance", "stroke_style_gain"),
        ):
            if figures["original"][distance]:
                figures[gain] = 1.0 - figures["result"][distance] / figures["original"][distance]

    with staged_outputs(out_dir) as staging:  # every file appears at once in out_dir/result, or none
        with timer("export"):
            stem = Path(cfg.mesh.path).stem
            images = [tensor_to_pil(t) for t in mesh.layout.unflatten(texels)]
            files = export_scene(mesh, images, stem, staging, cfg.export)
            preview.save(staging / "preview.png")
            files.append("preview.png")
            if cfg.export.turntable.frames > 0:
                save_gif(turntable(mesh, held_out, original, texels, cfg, device), staging / "turntable.gif", cfg.export.turntable.seconds)
                files.append("turntable.gif")
            if cfg.export.texture_compare:
                texture_compare([tensor_to_pil(t) for t in mesh.textures], images).save(staging / "texture_compare.png")
                files.append("texture_compare.png")
            files += write_reference_views(reference, held_out.world_cameras(mesh.centre, mesh.radius), staging)
            if cfg.export.history:
                files += write_history(history, staging)
        reduction = 1.0 - after["style"] / before["style"] if before["style"] > 0 else 0.0
        metrics = {
            "mesh": str(cfg.mesh.path),
            "style": OmegaConf.to_container(cfg.style, resolve=True)["path"],
            "backbone": backbone,
            "backbone_dtype": str(extractor.dtype).removeprefix("torch."),
            "device": str(device),
            "faces": int(mesh.faces.shape[0]),
            "warnings": mesh.warnings,
            "scene": {"meshes": len(mesh.source.graph.nodes_geometry), "materials": len(mesh.slots)},
            "textures": [list(t.shape[:2]) for t in mesh.textures],
            "views": {"optimized": len(bank), "held_out": len(held_out)},
            "held_out": {"before": before, "after": after, "style_loss_reduction": reduction},
            "quality": figures,
            "texels_seen_fraction": taught.float().mean().item(),
            "final_train_loss": history[-1] if history else None,
            "seconds": timer.seconds,
            "total_seconds": time.perf_counter() - started,
            "peak_memory_mb": peak_memory_mb(device),
            "preset": preset(),
            "versions": versions(),
            "files": files,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        write_json(staging / "metrics.json", metrics)
    checkpoint.remove()  # the result is complete: nothing left to resume
    timer.close()
    log.info(
        "held-out style loss %.4f → %.4f (%.0f %% lower); %.0f s in all; results in %s",
        before["style"], after["style"], 100 * reduction, metrics["total_seconds"], result_dir,
    )
    return metrics

