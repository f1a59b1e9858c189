"""The command line as a user runs it: errors are one line with exit code 2, sweeps complete."""

import csv
import importlib.util
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, TINY
from mesh_style import cli
from mesh_style.checkpoint import saved_step
from mesh_style.schema import settings


#: SIGKILLs in the resume test (each costs a process start, a few seconds; the issue's 10:
#: MESH_STYLE_KILLS=10 pytest tests/test_cli.py -k kill_9).
KILLS = int(os.environ.get("MESH_STYLE_KILLS", 5))


def mesh_style(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": ""}
    return subprocess.run(
        [sys.executable, "-m", "mesh_style", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def as_foreground() -> None:
    """In the child: Ctrl-C's default action, as for a command typed at a terminal. A shell starts
    background jobs (``make test &``) with SIGINT ignored, and mesh-style keeps it ignored then."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("mesh-style: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def inputs(tmp_path, vase_glb, style_png):
    return {"mesh": vase_glb, "style": style_png, "run": tmp_path / "run"}


def _no_result(run_dir: Path) -> None:
    if run_dir.exists():
        names = {p.name for p in run_dir.iterdir()}
        assert not names & {"result", "metrics.json", "preview.png"} and not any(n.endswith((".glb", ".obj", ".png")) for n in names)


@pytest.mark.parametrize(
    "mesh_arg, style_arg, fragments",
    [
        ("missing.glb", "{style}", ["mesh file not found", "mesh.path"]),
        ("{mesh}", "missing.png", ["style image not found", "style.path"]),
        ("{mesh}", "{text_png}", ["cannot read style image"]),
        ("{fbx}", "{style}", ["unsupported mesh format"]),
        ("{points}", "{style}", ["no triangle faces"]),
    ],
)
def test_bad_inputs(tmp_path, inputs, mesh_arg, style_arg, fragments):
    files = {
        "mesh": inputs["mesh"],
        "style": inputs["style"],
        "text_png": tmp_path / "notes.png",
        "fbx": tmp_path / "chair.fbx",
        "points": tmp_path / "points.obj",
    }
    files["text_png"].write_text("this is not an image")
    files["fbx"].write_bytes(b"Kaydara FBX Binary  \x00")
    files["points"].write_text("v 0 0 0\nv 1 0 0\n")
    before = {name: path.read_bytes() for name, path in files.items()}
    result = mesh_style(
        f"mesh.path={mesh_arg.format(**files)}", f"style.path={style_arg.format(**files)}", *TINY,
        f"hydra.run.dir={inputs['run']}", cwd=tmp_path,
    )
    assert_user_error(result, *fragments)
    _no_result(inputs["run"])
    assert {name: path.read_bytes() for name, path in files.items()} == before  # inputs untouched


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("views.nmu=3", ["views.nmu is not a setting", "--help"]),
        ("preset=turbo", ["preset/turbo", "fast"]),
        ("views.num=0", ["views.num"]),
        ("render.image_size=2", ["render.image_size"]),
        ("device=gpu", ["device='gpu'"]),
        ("optim.steps=-5", ["optim.steps"]),
        ("style.size=1", ["style.size"]),
        ("backbone.name=resnet", ["backbone.name='resnet'"]),
        ("backbone.precision=fp16", ["backbone.precision='fp16'", "bfloat16"]),
        ("loss.content_layer=relu9_1", ["relu9_1"]),
        ("export.formats=[fbx]", ["export.formats"]),
        ("export.formats=[]", ["export.formats=[]", "glb and/or obj"]),
        ("export.turntable.frames=-1", ["export.turntable.frames=-1", ">= 0"]),
        ("mesh.unwrap.padding=-2", ["mesh.unwrap.padding"]),
        ("mesh.unwrap.when=sometimes", ["mesh.unwrap.when='sometimes'", "stretched"]),
        ("optim.texture_size=3", ["optim.texture_size"]),
        ("optim.texture_size=huge", ["optim.texture_size=huge", "auto"]),
        ("optim.texels_per_pixel=0", ["optim.texels_per_pixel"]),
        ("optim.level_decay=2", ["optim.level_decay"]),
        ("loss.background=white", ["loss.background='white'", "mean"]),
        ("loss.style_weight=nan", ["loss.style_weight=nan", ">= 0"]),
        ("loss.chroma_weight=-1", ["loss.chroma_weight=-1"]),
        ("loss.facing_power=inf", ["loss.facing_power=inf"]),
        ("loss.style_kind=adain", ["loss.style_kind='adain'", "gram, w2, swd, nnfm"]),
        ("loss.style_layers={relu1_1: -1}", ["loss.style_layers", ">= 0"]),
        ("style.weights=[1,1]", ["style.weights has 2 values for 1 paintings"]),
        ("style.weights=[-1]", ["style.weights=[-1.0]", ">= 0"]),
        ("style.colour=keep", ["style.colour='keep'", "transfer, preserve"]),
        ("optim.steps=abc", ["optim.steps=abc is not a valid integer"]),
        ("optim.steps=2.5", ["optim.steps=2.5 is not a valid integer"]),
        ("optim.lr=abc", ["optim.lr=abc is not a valid float"]),
        ("views.num=abc", ["views.num=abc"]),
        ("render.image_size=abc", ["render.image_size=abc"]),
        ("render.background=[1,1]", ["render.background=[1.0, 1.0]", "three numbers"]),
        ("views.elev=[10]", ["views.elev=[10.0]", "[low, high]"]),
        ("views.elev=[50,10]", ["views.elev=[50.0, 10.0]", "low <= high"]),
        ("export.formats=glb", ["export.formats=glb is not a valid list"]),
        ("style.recolour_start=maybe", ["style.recolour_start=maybe"]),
        ("style.recolour_end=2", ["style.recolour_end=2.0"]),
        ("style.recolour_end_luma=dark", ["style.recolour_end_luma='dark'", "keep, move"]),
        ("style.chroma_blur=-1", ["style.chroma_blur=-1.0"]),
    ],
)
def test_bad_config_values(tmp_path, inputs, override, fragments):
    result = mesh_style(
        f"mesh.path={inputs['mesh']}", f"style.path={inputs['style']}", *TINY, override,
        f"hydra.run.dir={inputs['run']}", cwd=tmp_path,
    )
    assert_user_error(result, *fragments)
    _no_result(inputs["run"])


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([], "no mesh given"),
        (["mesh.path=duck.glb"], "no style image given"),
        (["duck.glb", "starry.jpg", "optim.steps=abc"], "optim.steps=abc"),
        (["duck.glb", "starry.jpg", "optim.lr=-1"], "optim.lr=-1.0"),
    ],
)
def test_config_errors_answered_before_torch_and_without_a_run_folder(tmp_path, args, fragment):
    """Checked while parsing arguments (the schema's types, then its ranges): torch is never
    imported, Hydra makes no run folder."""
    probe = "import sys; from mesh_style import cli\ntry: cli.main()\nfinally: print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe, *args, *TINY], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert_user_error(result, fragment)
    assert result.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_multirun_sweep_gives_complete_run_directories(tmp_path, inputs):
    sweep = tmp_path / "sweep"
    result = mesh_style(
        "-m", "loss.style_weight=1e3,1e4", "views.num=4,8",
        f"mesh.path={inputs['mesh']}", f"style.path={inputs['style']}",
        *(o for o in TINY if not o.startswith("views.num")), f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "result" / "metrics.json").exists())
    assert len(runs) == 4
    for run_dir in runs:
        assert {"vase_stylized.glb", "vase_stylized.obj", "preview.png"} <= {p.name for p in (run_dir / "result").iterdir()}
    with open(sweep / "summary.csv") as file:
        rows = list(csv.DictReader(file))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3"] and {r["status"] for r in rows} == {"ok"}
    assert {"style_gain", "mesh_style_gain", "grey_style_gain", "stroke_style_gain", "structure", "speckle"} <= set(rows[0])
    assert rows[3]["overrides"].split() == ["loss.style_weight=10000.0", "views.num=8"] and float(rows[3]["seconds"]) > 0
    assert "![job 3](3/result/preview.png)" in (sweep / "summary.md").read_text()
    # summary.png: per job a label strip and its preview scaled to the sheet's width, 4 px apart.
    from mesh_style.sweep import LABEL_HEIGHT, SHEET_WIDTH

    previews = [Image.open(run_dir / "result" / "preview.png") for run_dir in runs]
    sheet = Image.open(sweep / "summary.png")
    assert sheet.width == SHEET_WIDTH
    assert sheet.height == sum(LABEL_HEIGHT + round(p.height * SHEET_WIDTH / p.width) + 4 for p in previews)


def test_shell_completion_installs_and_completes_settings(tmp_path):
    """Hydra's ``-sc install=bash`` and its queries work through mesh-style's argument checks."""
    command = str(Path(sys.executable).with_name("mesh-style"))
    install = subprocess.run([command, "-sc", "install=bash"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert install.returncode == 0 and "complete -o nospace -o default -F hydra_bash_completion mesh-style" in install.stdout
    line = "mesh-style optim.st"
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    query = subprocess.run([command, "-sc", "query=bash"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert query.returncode == 0 and query.stdout.split() == ["optim.steps="], query.stderr
    assert not list(tmp_path.iterdir())


def test_non_editable_install_finds_its_configs(tmp_path):
    """``pip install .`` (not editable) ships configs/ inside the package."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    assert (site / "mesh_style" / "configs" / "preset" / "fast.yaml").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import mesh_style; print(mesh_style.__file__)"], cwd=tmp_path, env=env,
        capture_output=True, text=True, check=True,
    )
    assert where.stdout.startswith(str(site))
    shown = subprocess.run(
        [sys.executable, "-m", "mesh_style", "preset=fast", "--cfg", "job"], cwd=tmp_path, env=env,
        capture_output=True, text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert "image_size: 128" in shown.stdout


def test_version_prints_mesh_styles_own(tmp_path):
    from mesh_style import __version__

    result = mesh_style("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"mesh-style {__version__}", result


@pytest.mark.parametrize(
    "args, expected",
    [
        (["duck.glb", "starry.jpg", "preset=fast"], ["mesh.path='duck.glb'", "style.path='starry.jpg'", "preset=fast"]),
        (["preset=fast", "duck.glb"], ["mesh.path='duck.glb'", "preset=fast"]),
        (["--config-dir", "mine", "duck.glb", "-m"], ["--config-dir", "mine", "-m", "mesh.path='duck.glb'"]),
        (["my chair, v2 [final].glb"], ["mesh.path='my chair, v2 [final].glb'"]),
        (["mesh.path=a.glb", "views.num=4"], ["mesh.path=a.glb", "views.num=4"]),
        (["preset=fast", "--cfg", "job", "--package", "loss"], ["--cfg", "job", "--package", "loss", "preset=fast"]),
        (["--info", "defaults", "duck.glb"], ["--info", "defaults", "mesh.path='duck.glb'"]),
        (["--info", "duck.glb"], ["--info", "mesh.path='duck.glb'"]),
    ],
)
def test_positional_mesh_and_painting_become_overrides(args, expected):
    from mesh_style.cli import expand_positionals

    assert expand_positionals(args) == expected


@pytest.mark.parametrize("path", ["it's.glb", "a\\b.glb", "trailing\\", "x\\'y.glb"])
def test_quoted_paths_read_back_unchanged_by_hydra(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mesh_style.cli import quoted

    assert OverridesParser.create().parse_override(f"mesh.path={quoted(path)}").value() == path


def test_shorthand_runs_and_a_third_positional_is_an_error(tmp_path, inputs):
    result = mesh_style(str(inputs["mesh"]), str(inputs["style"]), "preset=fast", *TINY, f"hydra.run.dir={inputs['run']}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((inputs["run"] / "result" / "metrics.json").read_text())
    assert metrics["mesh"] == str(inputs["mesh"]) and metrics["preset"] == "fast"
    extra = tmp_path / "again"
    result = mesh_style(str(inputs["mesh"]), str(inputs["style"]), "extra.jpg", f"hydra.run.dir={extra}", cwd=tmp_path)
    assert_user_error(result, "'extra.jpg'", "MESH and PAINTING")
    assert not extra.exists()


def test_help_documents_every_setting_from_the_schema(tmp_path):
    """``--help``: description, usage, examples, and every setting of the schema with its default
    and doc; answered without importing torch."""
    probe = "import sys; from mesh_style import cli\ncli.main()\nprint('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "usage: mesh-style MESH PAINTING [key=value ...]" in text and "examples:" in text
    assert text.strip().endswith("False")  # torch not imported
    entries = settings()
    assert len(entries) > 50 and {"loss.style_weight", "optim.steps", "export.turntable.frames"} <= {key for key, _, _ in entries}
    for key, default, doc in entries:
        assert f"{key}={cli.shown(default)}" in text and doc in text, key
    assert "optim.steps=300 " in text and "style.recolour_start=true " in text
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "signum, code, line",
    [(signal.SIGINT, 130, "mesh-style: interrupted; no result was written"),
     (signal.SIGTERM, 143, "mesh-style: terminated (SIGTERM); no result was written")],
)
def test_ctrl_c_or_sigterm_during_a_run_prints_one_line_and_leaves_no_result(tmp_path, inputs, signum, code, line):
    process = subprocess.Popen(
        [sys.executable, "-m", "mesh_style", f"mesh.path={inputs['mesh']}", f"style.path={inputs['style']}", *TINY,
         "optim.steps=100000", "optim.checkpoint_every=1", f"hydra.run.dir={inputs['run']}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_foreground,
    )
    deadline = time.monotonic() + 120
    while not (inputs["run"] / "checkpoint.pt").exists():  # optimising, a step or more done
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"the run saved no checkpoint: {process.communicate()}")
        time.sleep(0.5)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and line in stderr
    # The checkpoint saved at every step is kept, and the line says how to continue from it.
    stop = next(text for text in stderr.splitlines() if text.startswith("mesh-style: "))
    assert "resume from step" in stop, stderr
    resume = shlex.split(stop.split(": ", 2)[2].removesuffix(")"))
    assert "resume from step" in stop and resume[0] == "mesh-style" and resume[-2:] == ["resume=true", f"hydra.run.dir={inputs['run']}"]
    assert f"mesh.path={inputs['mesh']}" in resume and (inputs["run"] / "checkpoint.pt").is_file()
    _no_result(inputs["run"])
    assert not [p for p in inputs["run"].iterdir() if p.name.startswith(".partial-")]


@pytest.mark.parametrize(
    "module, signum, code",
    [("hydra", signal.SIGINT, 130), ("torch", signal.SIGTERM, 143), ("networkx", signal.SIGINT, 130), ("networkx", signal.SIGTERM, 143)],
)
def test_a_stop_during_the_imports_is_one_line(tmp_path, inputs, module, signum, code):
    """Ctrl-C or SIGTERM while Hydra or torch is being imported stops the run in one line. trimesh
    imports its optional dependencies (networkx) inside ``except BaseException``: a stop that lands
    there must still stop the run."""
    probe = f"""
import os, sys
class StopAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), {int(signum)})
sys.meta_path.insert(0, StopAtImport())
from mesh_style import cli
sys.argv[1:] = {[str(inputs['mesh']), str(inputs['style']), *TINY, f"hydra.run.dir={inputs['run']}"]!r}
cli.main()
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300, preexec_fn=as_foreground)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().endswith("no result was written"), result.stderr
    _no_result(inputs["run"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_stop_during_export_leaves_no_result_and_a_resume_completes_it(tmp_path, inputs, signum):
    """SIGTERM or SIGKILL while the result's files are being written (here: after the meshes, the
    previews and the reference renders): no ``result/`` and no result file in the run folder; the
    hidden staging folder a SIGKILL leaves is removed by the resumed run, which completes."""
    args = [str(inputs["mesh"]), str(inputs["style"]), *TINY, f"hydra.run.dir={inputs['run']}"]
    probe = f"""
import os, sys
import mesh_style.run
from mesh_style import cli
written = mesh_style.run.write_reference_views
def stop_after(*args):
    names = written(*args)
    os.kill(os.getpid(), {int(signum)})
    return names
mesh_style.run.write_reference_views = stop_after
sys.argv[1:] = {args!r}
cli.main()
"""
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 143), result.stderr
    assert "Traceback" not in result.stderr
    _no_result(inputs["run"])
    staged = [p for p in inputs["run"].iterdir() if p.name.startswith(".partial-")]
    assert len(staged) == (1 if signum == signal.SIGKILL else 0)  # SIGKILL: the staging folder, hidden
    resumed = mesh_style(*args, "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(p.name for p in inputs["run"].iterdir() if not p.name.startswith((".hydra", "cli.log"))) == ["result"]
    assert (inputs["run"] / "result" / "metrics.json").is_file()


def test_kill_9_at_random_moments_then_resume_gives_the_same_texture_bit_for_bit(tmp_path, inputs):
    """SIGKILL at random moments of a run (during the imports, at random steps of the optimisation,
    after its last checkpoint), each followed by ``resume=true``: the final texture, losses and
    figures equal, bit for bit, those of the same run never stopped (on CPU)."""
    args = [str(inputs["mesh"]), str(inputs["style"]), *TINY, "optim.steps=100", "optim.checkpoint_every=3"]
    reference = mesh_style(*args, f"hydra.run.dir={tmp_path / 'reference'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    rng = random.Random(0)
    # Kill after these checkpoints (then a random fraction of a second later): 0 = during the imports.
    after_steps = [0, *sorted(rng.sample(range(3, 97, 3), KILLS - 2)), 99]
    killed = 0
    for step in after_steps:
        process = subprocess.Popen(
            [sys.executable, "-m", "mesh_style", *args, "resume=true", f"hydra.run.dir={inputs['run']}"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while step and (saved_step(inputs["run"]) or 0) < step and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 2.0) if step in (0, 99) else rng.uniform(0.0, 0.3))
        killed += process.poll() is None
        process.kill()
        process.wait()
    assert killed >= KILLS - 1  # the kill after the last checkpoint may come after the run has ended
    resumed = mesh_style(*args, "resume=true", f"hydra.run.dir={inputs['run']}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from step" in (inputs["run"] / "cli.log").read_text()  # progress was kept across kills
    assert not (inputs["run"] / "checkpoint.pt").exists()  # done: nothing left to resume
    for name in ("vase_stylized.png", "history.csv", "held_out_0.png"):
        assert (inputs["run"] / "result" / name).read_bytes() == (tmp_path / "reference" / "result" / name).read_bytes(), name
    first, then = (json.loads((folder / "result" / "metrics.json").read_text()) for folder in (tmp_path / "reference", inputs["run"]))
    assert then["final_train_loss"] == first["final_train_loss"] and then["quality"] == first["quality"]
    # Once finished, resume=true returns the finished result instead of refusing the folder.
    again = mesh_style(*args, "resume=true", f"hydra.run.dir={inputs['run']}", cwd=tmp_path)
    assert again.returncode == 0 and json.loads((inputs["run"] / "result" / "metrics.json").read_text()) == then


def test_config_dir_adds_the_users_own_presets_and_keeps_one_line_errors(tmp_path):
    """Standard Hydra usage: ``--config-dir DIR preset=mine`` finds DIR/preset/mine.yaml (also after
    MESH PAINTING); a bad value beside it is still one line."""
    (tmp_path / "mine" / "preset").mkdir(parents=True)
    (tmp_path / "mine" / "preset" / "mine.yaml").write_text("# @package _global_\nrender:\n  image_size: 64\n")
    result = mesh_style("--config-dir", "mine", "duck.glb", "starry.jpg", "preset=mine", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "image_size: 64" in result.stdout
    bad = mesh_style("--config-dir", "mine", "duck.glb", "starry.jpg", "preset=mine", "optim.steps=abc", cwd=tmp_path)
    assert_user_error(bad, "optim.steps=abc is not a valid integer")


RAY = pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="Ray's launcher downgrades cloudpickle (breaks joblib): it lives in a virtualenv of its own",
)


@pytest.mark.parametrize("launcher", ["basic", "local_parallel", "submitit_local", pytest.param("ray", marks=RAY)])
def test_launchers_run_a_sweep_with_a_bad_job_to_its_summary(tmp_path, inputs, launcher):
    """Hydra's basic launcher, the launchers extra's joblib (our preset, 2 jobs at a time) and
    submitit's local executor (and Ray's, where installed). In a 4-job sweep one bad job fails alone
    with its one line and no result, is not retried, the 3 good ones complete, the summary lists all
    and the sweep exits with status 2; no traceback anywhere."""
    sweep = tmp_path / "sweep"
    result = mesh_style(
        "-m", f"hydra/launcher={launcher}", "optim.lr=-1,0.1,0.05,0.2", f"mesh.path={inputs['mesh']}", f"style.path={inputs['style']}",
        *TINY, f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    logs = result.stdout + result.stderr + "".join(p.read_text(errors="ignore") for p in sweep.rglob("*.log") if p.is_file())
    assert "Traceback" not in logs
    assert result.stderr.count("must be a finite number") <= 1  # not retried (Ray retries a failed task)
    with open(sweep / "summary.csv") as file:
        status = {r["job"]: r["status"] for r in csv.DictReader(file)}
    assert [status[job] for job in "123"] == ["ok"] * 3 and status["0"].startswith("failed: optim.lr=-1.0 must be a finite number > 0"), status
    assert all((sweep / job / "result" / "metrics.json").exists() for job in "123") and (sweep / "0" / "error.txt").exists()
    _no_result(sweep / "0")
    assert (sweep / "summary.png").is_file()
