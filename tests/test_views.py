"""View sampling honours its ranges; bad settings are refused."""

import pytest
import torch

from mesh_style.errors import MeshStyleError
from mesh_style.schema import validate
from mesh_style.views import sample_views


def test_views_honour_ranges_and_are_seeded(make_cfg):
    cfg = make_cfg("views.num=200", "views.held_out=50", "views.elev=[10,30]", "views.azim=[-90,45]", "views.fov=30").views
    bank, held_out = sample_views(cfg, seed=3)
    assert len(bank) == 200 and len(held_out) == 50
    for views in (bank, held_out):
        assert views.elev.min() >= 10 - 1e-4 and views.elev.max() <= 30 + 1e-4
        assert views.azim.min() >= -90 - 1e-4 and views.azim.max() <= 45 + 1e-4
    # Stratified: every eighth of the azimuth range holds some bank views.
    counts = torch.histc(bank.azim, bins=8, min=-90, max=45)
    assert (counts > 0).all()
    again, _ = sample_views(cfg, seed=3)
    assert torch.equal(bank.azim, again.azim) and torch.equal(bank.elev, again.elev)
    other, _ = sample_views(cfg, seed=4)
    assert not torch.equal(bank.azim, other.azim)


def test_camera_distance_keeps_unit_sphere_in_frame(make_cfg):
    bank, _ = sample_views(make_cfg("views.num=8").views, seed=0)
    cameras = bank.cameras()
    # Points on the unit sphere project inside NDC [-1, 1] from every view.
    directions = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    projected = cameras.transform_points(directions.expand(len(bank), -1, -1))
    assert projected[..., :2].abs().max() <= 1.0


@pytest.mark.parametrize(
    "override",
    ["views.num=0", "views.per_step=0", "views.elev=[50,10]", "views.elev=[-100,0]", "views.fov=180", "views.margin=0.5"],
)
def test_bad_view_settings_are_refused(make_cfg, override):
    with pytest.raises(MeshStyleError, match=override.split("=")[0]):
        validate(make_cfg("mesh.path=a.glb", "style.path=b.jpg", override))
