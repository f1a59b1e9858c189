"""Command line: ``mesh-style mesh.path=chair.glb style.path=starry_night.jpg [key=value ...]``,
or for short ``mesh-style chair.glb starry_night.jpg [key=value ...]``.

The Hydra entry point is trivial: it calls :func:`mesh_style.run.run`. User errors (bad input,
bad config value, unknown config key) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from mesh_style.errors import MeshStyleError
from mesh_style.sweep import ERROR_FILE

CONFIG_MODULE = "mesh_style.configs"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
#: Hydra's flags that print something instead of running.
NO_RUN_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
#: Hydra's flags that take the next argument as their value (``--info`` only one of its topics).
FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun", "--cfg", "-c", "--package", "-p"}
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
#: Keys that the first and second positional arguments set.
POSITIONAL_KEYS = ("mesh.path", "style.path")


def fail(message: str) -> None:
    print(f"mesh-style: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="config")
def hydra_main(cfg: DictConfig) -> None:
    from mesh_style.allocator import reuse_freed_memory
    from mesh_style.run import run  # heavy imports (torch, PyTorch3D) only once arguments are valid

    reuse_freed_memory()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run(cfg, out_dir)
    except MeshStyleError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # one bad job must not stop the others
            (out_dir / ERROR_FILE).write_text(f"{error}\n")
            print(f"mesh-style: error: {error}", file=sys.stderr)
            return
        fail(str(error))
    print(f"mesh-style: results in {out_dir}")


def _one_line(error: BaseException) -> str:
    parts = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
    text = " ".join(p.split("\n    full_key:")[0] for p in parts)  # drop OmegaConf's context block
    text = text.split("Config search path")[0]
    return re.sub(r"\s+", " ", text).strip()


def check_overrides(args: list[str]) -> None:
    """Compose the config once with the first value of every sweep, so that an unknown key or
    group option, or a missing mesh or painting, fails here with one line, before torch is imported,
    before Hydra makes a run folder or prints a multi-line report, and before a sweep starts its jobs."""
    from hydra import compose, initialize_config_module

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
        first = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed
        ]
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = compose("config", overrides=first, return_hydra_config=True)
    except Exception as error:  # Hydra and OmegaConf raise several types for bad overrides
        fail(f"{_one_line(error)} (see the keys with: mesh-style --cfg job)")
    asks_for_a_run = not any(a.split("=")[0] in NO_RUN_FLAGS for a in args)
    if asks_for_a_run and cfg.mesh.path is None:
        fail("no mesh given (mesh-style MESH PAINTING, or mesh.path=model.glb: GLB, glTF, OBJ or PLY)")
    if asks_for_a_run and cfg.style.path is None:
        fail("no style image given (mesh-style MESH PAINTING, or style.path=painting.jpg)")


def quoted(value: str) -> str:
    """``value`` as a Hydra quoted string, so that commas, spaces and brackets in paths stay literal.

    Hydra reads a backslash literally except before a quote or at the end of the string.
    """
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def expand_positionals(args: list[str]) -> list[str]:
    """``MESH PAINTING key=value ...`` → ``mesh.path=MESH style.path=PAINTING key=value ...``."""
    out, positionals, previous = [], [], ""
    for arg in args:
        is_value = previous in FLAGS_WITH_VALUE or (previous in ("--info", "-i") and arg in INFO_TOPICS)
        if is_value or arg.startswith("-") or "=" in arg or arg.startswith("~"):
            out.append(arg)
        else:
            positionals.append(arg)
        previous = "" if is_value else arg
    if len(positionals) > len(POSITIONAL_KEYS):
        fail(f"unexpected argument {positionals[len(POSITIONAL_KEYS)]!r} (give MESH and PAINTING first, then key=value overrides)")
    return [f"{key}={quoted(value)}" for key, value in zip(POSITIONAL_KEYS, positionals)] + out


HELP = """\
mesh-style {version}: repaint the texture of a 3D model in the style of a painting.
Renders the textured mesh from many views, and moves the texture until VGG features of the renders
match the painting's style (Gatys et al.) and the original's content; saves GLB and OBJ+MTL+PNG.

usage: mesh-style MESH PAINTING [key=value ...]
       mesh-style mesh.path=MESH style.path=PAINTING [key=value ...]
       mesh-style -m MESH PAINTING key=a,b ...      a sweep: one run per combination

examples:
  mesh-style Duck.glb starry_night.jpg preset=fast             about 2 min on a 2-core CPU
  mesh-style chair.obj scream.jpg preset=quality               GPU-sized
  mesh-style -m chair.glb s.jpg loss.style_weight=0.3,1,3      from the original towards the painting
  mesh-style chair.glb s.jpg style.colour=preserve             the painting's strokes, the chair's colours

settings (key=default):
{settings}
presets (applied last): preset=fast (CPU-sized), preset=quality (GPU-sized)
loss options: loss=fine (small brush strokes), loss=coarse (large brush strokes)
more: mesh-style --cfg job (every value), --hydra-help (Hydra's own options), --version
"""


def settings_help() -> str:
    """One line per documented setting, ``group.key=default  comment``, read from the config files
    themselves (their comments are the documentation), in the order of the defaults list."""
    from importlib.resources import files

    root = files(CONFIG_MODULE)
    main_lines = root.joinpath("config.yaml").read_text().splitlines()
    groups = [re.match(r"\s+- (\w+): (\w+)", line) for line in main_lines]
    sources = [("", main_lines)] + [
        (f"{m[1]}.", root.joinpath(m[1], f"{m[2]}.yaml").read_text().splitlines()) for m in groups if m and m[2] != "null"
    ]
    out, parents = [], []
    for prefix, lines in sources:
        for line in lines:
            entry = re.match(r"( *)(\w+):\s*(.*?)\s*(?:#\s*(.*))?$", line)
            if not entry or entry[2] in ("defaults", "hydra"):
                if entry and not entry[1]:
                    parents = [None]  # skip the whole block
                continue
            depth = len(entry[1]) // 2
            parents = parents[:depth] + [entry[2]]
            if None in parents or not entry[4]:
                continue
            setting = prefix + ".".join(parents) + (f"={entry[3]}" if entry[3] else "")
            out.append(f"  {setting:<42} {entry[4]}")
    return "\n".join(out)


def main() -> None:
    """Console entry point of ``mesh-style`` and ``python -m mesh_style``."""
    if any(a in ("--help", "-h") for a in sys.argv[1:]):
        from mesh_style import __version__

        print(HELP.format(version=__version__, settings=settings_help()))
        return
    if sys.argv[1:] in (["--version"], ["-V"]):
        from mesh_style import __version__

        print(f"mesh-style {__version__}")
        return
    sys.argv[1:] = expand_positionals(sys.argv[1:])
    check_overrides(sys.argv[1:])
    try:
        hydra_main()
    except KeyboardInterrupt:  # Ctrl-C: staged outputs are already removed; one line, not a traceback
        print("mesh-style: interrupted; no result was written", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
