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
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from mesh_style.errors import MeshStyleError

CONFIG_MODULE = "mesh_style.configs"
EXIT_USER_ERROR = 2


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
        fail(str(error))
    print(f"mesh-style: results in {out_dir}")


def _one_line(error: BaseException) -> str:
    parts = [str(error)] + ([str(error.__cause__)] if error.__cause__ else [])
    text = " ".join(p.split("\n    full_key:")[0] for p in parts)  # drop OmegaConf's context block
    text = text.split("Config search path")[0]
    return re.sub(r"\s+", " ", text).strip()


def check_overrides(args: list[str]) -> None:
    """Compose the config once with the first value of every sweep, so that an unknown key or
    group option fails here with one line, before Hydra prints a multi-line report or a sweep
    starts its jobs."""
    from hydra import compose, initialize_config_module

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    try:
        parsed = OverridesParser.create().parse_overrides(candidates)
        first = [
            f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed
        ]
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            compose("config", overrides=first, return_hydra_config=True)
    except Exception as error:  # Hydra and OmegaConf raise several types for bad overrides
        fail(f"{_one_line(error)} (see the keys with: mesh-style --cfg job)")


#: Hydra's flags that take the next argument as their value.
FLAGS_WITH_VALUE = {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun"}
#: Keys that the first and second positional arguments set.
POSITIONAL_KEYS = ("mesh.path", "style.path")


def quoted(value: str) -> str:
    """``value`` as a Hydra quoted string, so that commas, spaces and brackets in paths stay literal.

    Hydra reads a backslash literally except before a quote or at the end of the string.
    """
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def expand_positionals(args: list[str]) -> list[str]:
    """``MESH PAINTING key=value ...`` → ``mesh.path=MESH style.path=PAINTING key=value ...``."""
    out, positionals, after_flag = [], [], False
    for arg in args:
        if after_flag or arg.startswith("-") or "=" in arg or arg.startswith("~"):
            out.append(arg)
            after_flag = arg in FLAGS_WITH_VALUE
        else:
            positionals.append(arg)
    if len(positionals) > len(POSITIONAL_KEYS):
        fail(f"unexpected argument {positionals[len(POSITIONAL_KEYS)]!r} (give MESH and PAINTING first, then key=value overrides)")
    return [f"{key}={quoted(value)}" for key, value in zip(POSITIONAL_KEYS, positionals)] + out


def main() -> None:
    """Console entry point of ``mesh-style`` and ``python -m mesh_style``."""
    if sys.argv[1:] in (["--version"], ["-V"]):
        from mesh_style import __version__

        print(f"mesh-style {__version__}")
        return
    sys.argv[1:] = expand_positionals(sys.argv[1:])
    check_overrides(sys.argv[1:])
    hydra_main()
