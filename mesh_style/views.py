"""Camera views: a bank to optimise on and a disjoint set of held-out views for evaluation.

The mesh lives in the normalised frame (bounding sphere of radius 1 at the origin), so a camera
at distance ``margin / sin(fov / 2)`` sees the whole sphere, and the mesh fills the frame, from
every direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from pytorch3d.renderer import FoVPerspectiveCameras, look_at_view_transform



@dataclass(frozen=True)
class Views:
    """Camera poses around the origin, looking at it.

    Attributes:
        elev: ``(N,)`` elevation in degrees.
        azim: ``(N,)`` azimuth in degrees.
        dist: distance from the origin, shared by all views.
        fov: vertical field of view in degrees.
    """

    elev: torch.Tensor
    azim: torch.Tensor
    dist: float
    fov: float

    def __len__(self) -> int:
        return len(self.elev)

    def cameras(self, device: torch.device | str = "cpu") -> FoVPerspectiveCameras:
        rotation, translation = look_at_view_transform(dist=self.dist, elev=self.elev, azim=self.azim)
        return FoVPerspectiveCameras(R=rotation, T=translation, fov=self.fov, znear=0.01, device=device)

    def world_cameras(self, centre: tuple[float, float, float], radius: float) -> list[dict[str, object]]:
        """The cameras in the mesh file's own coordinates (``world = centre + radius × normalised``),
        for other renderers: position, look-at target, up vector and vertical field of view."""
        positions = self.cameras().get_camera_center() * radius + torch.tensor(centre)
        return [
            {"position": p.tolist(), "target": list(centre), "up": [0.0, 1.0, 0.0], "fov_degrees": self.fov}
            for p in positions
        ]

    def __getitem__(self, ids: slice) -> "Views":
        return Views(self.elev[ids], self.azim[ids], self.dist, self.fov)

    def cat(self, other: "Views") -> "Views":
        return Views(torch.cat([self.elev, other.elev]), torch.cat([self.azim, other.azim]), self.dist, self.fov)


def _sample(num: int, cfg: DictConfig, generator: torch.Generator, phase: float) -> Views:
    # Stratified azimuths cover the circle evenly; elevations are uniform in sin(elev), i.e. in
    # area on the sphere, so that poles are not over-sampled.
    low, high = cfg.azim
    strata = (torch.arange(num, dtype=torch.float64) + phase + 0.5 * torch.rand(num, generator=generator, dtype=torch.float64)) / num
    azim = low + (high - low) * strata.remainder(1.0)
    sin_low, sin_high = math.sin(math.radians(cfg.elev[0])), math.sin(math.radians(cfg.elev[1]))
    sin_elev = sin_low + (sin_high - sin_low) * torch.rand(num, generator=generator, dtype=torch.float64)
    elev = torch.rad2deg(torch.asin(sin_elev))
    dist = cfg.margin / math.sin(math.radians(cfg.fov) / 2)
    return Views(elev=elev.float(), azim=azim.float(), dist=dist, fov=float(cfg.fov))


def sample_views(cfg: DictConfig, seed: int) -> tuple[Views, Views]:
    """The optimisation bank (``cfg.num`` views) and the held-out views (``cfg.held_out``).

    Both are drawn from the same ranges with one seeded generator; the held-out strata are shifted
    by half a stratum, so held-out views tend to fall between the optimised ones.
    """
    generator = torch.Generator().manual_seed(seed)
    bank = _sample(cfg.num, cfg, generator, phase=0.0)
    held_out = _sample(cfg.held_out, cfg, generator, phase=0.5)
    return bank, held_out


def turntable_views(frames: int, elev: float, like: Views) -> Views:
    """``frames`` views one full turn around the mesh at elevation ``elev``, at ``like``'s distance and field of view."""
    azim = torch.arange(frames, dtype=torch.float32) * (360.0 / frames)
    return Views(elev=torch.full((frames,), float(elev)), azim=azim, dist=like.dist, fov=like.fov)
