"""Command line: ``mesh-style mesh.path=chair.glb style.path=starry_night.jpg [key=value ...]``,
or for short ``mesh-style chair.glb starry_night.jpg [key=value ...]``.

The Hydra entry point is trivial: it calls :func:`mesh_style.run.run`. User errors (bad input,
bad config value, unknown config key) print one line and exit with status 2, no traceback.
This module imports only the standard library at its top: :func:`main` catches Ctrl-C and SIGTERM
before Hydra, torch and the rest are imported, so a stop during the imports is one line too.
"""

from __future__ import annotations

import re
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from mesh_style.errors import MeshStyleError
from mesh_style.layout import ERROR_FILE, RESULT_DIR

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONFIG_MODULE = "mesh_style.configs"
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
#: Hydra's flags that print something instead of running.
NO_RUN_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
#: Hydra's flags that take the next argument as their value (``--info`` only one of its topics).
FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun", "--cfg", "-c", "--package", "-p"}
INFO_TOPICS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
#: Keys that the first and second positional arguments set.
POSITIONAL_KEYS = ("mesh.path", "style.path")


class Terminated(BaseException):
    """SIGTERM (a scheduler's or ``kill``'s stop), raised wherever the run is, so that its cleanup
    (the staging folder's removal) runs as for Ctrl-C."""


#: Ctrl-C and SIGTERM received, remembered: trimesh's optional imports catch ``BaseException`` and
#: would swallow the exception raised while they run.
received: list[BaseException] = []


def _stop(signum: int, frame: object) -> None:
    received.append(KeyboardInterrupt() if signum == signal.SIGINT else Terminated())
    raise received[-1]


def catch_stops() -> None:
    """Ctrl-C and SIGTERM raise (and are remembered) from here on; a SIGINT that the shell ignores
    for a background job stays ignored."""
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _stop)


#: The arguments as typed (before :func:`expand_positionals`), for the resume command of a stopped run.
typed_args: list[str] = []


def resume_command(out_dir: Path) -> str:
    """The command that continues the run stopped in ``out_dir`` (in a sweep: the whole sweep)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    place = "hydra.sweep.dir" if HydraConfig.get().mode == RunMode.MULTIRUN else "hydra.run.dir"
    folder = HydraConfig.get().sweep.dir if place == "hydra.sweep.dir" else out_dir
    kept = [a for a in typed_args if a.split("=")[0] not in ("resume", "hydra.run.dir", "hydra.sweep.dir")]
    return shlex.join(["mesh-style", *kept, "resume=true", f"{place}={folder}"])


def stopped(signal_: BaseException, out_dir: Path | None = None) -> NoReturn:
    """One line for Ctrl-C or SIGTERM, and how to resume where the run saved a checkpoint."""
    what, code = ("interrupted", EXIT_INTERRUPTED) if isinstance(signal_, KeyboardInterrupt) else ("terminated (SIGTERM)", EXIT_TERMINATED)
    hint = ""
    if out_dir is not None:
        from mesh_style.checkpoint import saved_step  # torch is loaded already: the run had started

        if (step := saved_step(out_dir)) is not None:
            hint = f" (resume from step {step}: {resume_command(out_dir)})"
    print(f"mesh-style: {what}; no result was written{hint}", file=sys.stderr)
    sys.exit(code)


def fail(message: str) -> NoReturn:
    print(f"mesh-style: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def hydra_main() -> None:
    """Hydra's command line: composes the config (or sweeps it) and runs :func:`job` on it."""
    import hydra

    hydra.main(version_base="1.3", config_path=f"pkg://{CONFIG_MODULE}", config_name="config")(job)()


def job(cfg: DictConfig) -> None:
    """One run (in a sweep, one job): :func:`mesh_style.run.run` into Hydra's output folder."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from tqdm.contrib.logging import logging_redirect_tqdm

    from mesh_style.allocator import reuse_freed_memory
    from mesh_style.run import run  # heavy imports (torch, PyTorch3D) only once arguments are valid

    if received:  # a stop that an import swallowed
        raise received[0]
    reuse_freed_memory()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            run(cfg, out_dir)
    except (KeyboardInterrupt, Terminated) as stop:  # staged outputs are already removed
        stopped(stop, out_dir)
    except MeshStyleError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:  # one bad job must not stop the others
            (out_dir / ERROR_FILE).write_text(f"{error}\n")
            print(f"mesh-style: error: {error}", file=sys.stderr)
            return
        fail(str(error))
    print(f"mesh-style: results in {out_dir / RESULT_DIR}")


#: Hydra's messages for an unknown key and a value of the wrong type, reworded below.
UNKNOWN_KEY = re.compile(r"Could not override '([^']+)'.* not in '\w+'")
WRONG_TYPE = re.compile(r"Error merging override (\S+) .*?(?:converted to|is not a valid|is not a) (\w+)")
#: Flags that replace the primary config or print completions: the check below leaves those to Hydra.
OWN_CONFIG_FLAGS = {"--config-path", "-cp", "--config-name", "-cn", "--shell-completion", "-sc"}


def _one_line(error: BaseException) -> str:
    parts = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
    text = " ".join(p.split("\n    full_key:")[0] for p in parts)  # drop OmegaConf's context block
    text = re.sub(r"\s+", " ", text.split("Config search path")[0]).strip()
    if unknown := UNKNOWN_KEY.search(text):
        return f"{unknown[1]} is not a setting (see them all with: mesh-style --help)"
    if wrong := WRONG_TYPE.search(text):
        kind = {"ListConfig": "list, e.g. [a,b]", "DictConfig": "map, e.g. {a:1}"}.get(wrong[2], wrong[2].lower())
        return f"{wrong[1]} is not a valid {kind} (see each setting's default with: mesh-style --help)"
    return f"{text} (see the settings with: mesh-style --help)"


def check_overrides(args: list[str]) -> None:
    """Compose the config once (with the first value of every sweep) and validate it, so that an
    unknown key or group option, a value of the wrong type, range or shape, or a missing mesh or
    painting fails here with one line, before torch is imported, before Hydra makes a run folder or
    prints a multi-line report, and before a sweep starts its jobs."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mesh_style.schema import require_inputs, validate

    if any(a.split("=")[0] in OWN_CONFIG_FLAGS for a in args):
        return  # run() validates the composed config, still before any work
    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    config_dirs = [Path(value).resolve() for flag, value in zip(args, args[1:]) if flag in ("--config-dir", "-cd")]
    parser = OverridesParser.create()
    for arg in candidates:
        try:
            parser.parse_override(arg)
        except Exception as error:  # Hydra's grammar errors
            reason = re.sub(r"\s+", " ", str(error)).split(" See https")[0]
            fail(f"cannot read the override {arg!r}: {reason} (quote values with commas, spaces or brackets: 'style.path=\"a,b.jpg\"')")
    try:
        parsed = parser.parse_overrides(candidates)
        first = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed
        ]
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            searchpath = [f"hydra.searchpath=[{','.join(quoted(f'file://{d}') for d in config_dirs)}]"] if config_dirs else []
            cfg = compose("config", overrides=first + searchpath, return_hydra_config=True)
    except Exception as error:  # Hydra and OmegaConf raise several types for bad overrides
        fail(_one_line(error))
    if any(a.split("=")[0] in NO_RUN_FLAGS for a in args):  # --cfg, --help: no run
        return
    sweep = any(a in ("-m", "--multirun") for a in args)
    try:
        require_inputs(cfg) if sweep else validate(cfg)  # in a sweep each job validates its values: a bad one fails alone
    except MeshStyleError as error:
        fail(str(error))


def quoted(value: str) -> str:
    """``value`` as a Hydra quoted string, so that commas, spaces and brackets in paths stay literal.

    Hydra reads a backslash literally except before a quote or at the end of the string.
    """
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def expand_positionals(args: list[str]) -> list[str]:
    """``MESH PAINTING key=value ...`` → ``mesh.path=MESH style.path=PAINTING key=value ...``, with
    Hydra's flags (and their values) first: its parser takes the overrides as one trailing run."""
    flags, overrides, positionals, previous = [], [], [], ""
    for arg in args:
        is_value = previous in FLAGS_WITH_VALUE or (previous in ("--info", "-i") and arg in INFO_TOPICS)
        if is_value or arg.startswith("-"):
            flags.append(arg)
        elif "=" in arg or arg.startswith("~"):
            overrides.append(arg)
        else:
            positionals.append(arg)
        previous = "" if is_value else arg
    if len(positionals) > len(POSITIONAL_KEYS):
        fail(f"unexpected argument {positionals[len(POSITIONAL_KEYS)]!r} (give MESH and PAINTING first, then key=value overrides)")
    return flags + [f"{key}={quoted(value)}" for key, value in zip(POSITIONAL_KEYS, positionals)] + overrides


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
loss options: loss=fine (small brush strokes), loss=coarse (large brush strokes), loss=nnfm (ARF's recipe),
  loss=gatys (Gatys et al.'s objective: bolder swirls, less of the original's detail),
  loss=strokes (textured objects: short strokes instead of a crackle, layout and logos kept;
    add loss.style_layers.rgb=0.25 on an object without a texture for the painting's palette)
more: mesh-style --cfg job (every value), --hydra-help (Hydra's own options), --version
"""


def shown(value: object) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, list):
        return "[" + ",".join(map(shown, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{shown(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    return str(value).lower() if isinstance(value, bool) else str(value)


def settings_help() -> str:
    """One line per setting, ``key=default  doc``, from the schema (the one place they are written)."""
    from mesh_style.schema import settings

    lines = []
    for key, default, doc in settings():
        setting = f"{key}={shown(default)}"
        lines.append(f"  {setting:<42} {doc}" if len(setting) <= 42 else f"  {setting}\n  {'':<42} {doc}")
    return "\n".join(lines)


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
    typed_args[:] = sys.argv[1:]
    sys.argv[1:] = expand_positionals(sys.argv[1:])
    catch_stops()
    try:
        check_overrides(sys.argv[1:])
        hydra_main()
    except (KeyboardInterrupt, Terminated) as stop:  # before or after the run: one line, not a traceback
        stopped(stop)
