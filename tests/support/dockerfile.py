"""The project's Dockerfile read as instructions, and its build stage replayed on this machine (no Docker engine here).

``tests/unit/test_compose.py`` reads the instructions; ``tests/integration/test_image_install.py``
replays the build stage's COPY, ENV and RUN lines into a folder, so the install step tested is the
Dockerfile's own text, not a copy of it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every line, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def stages(path: Path = DOCKERFILE) -> list[list[tuple[str, str]]]:
    """The instructions of each ``FROM`` stage, in order (what comes before the first FROM is left out)."""
    found: list[list[tuple[str, str]]] = []
    for op, args in instructions(path):
        if op == "FROM":
            found.append([])
        elif found:
            found[-1].append((op, args))
    return found


def build_arg(name: str, path: Path = DOCKERFILE) -> str:
    """The default value of ``ARG name=value``."""
    for op, args in instructions(path):
        if op == "ARG" and args.startswith(f"{name}="):
            return args.split("=", 1)[1]
    raise KeyError(f"{path}: no ARG {name}=...")


def replay_build_stage(
    workdir: Path, env: dict[str, str], *, overrides: dict[str, str], timeout: float = 1200
) -> dict[str, str]:
    """Run the first stage's COPY (from the build context), ENV and RUN lines in ``workdir``.

    Args:
        workdir: Stands for the stage's WORKDIR; the context's files are copied into it.
        env: The environment the RUN lines start from.
        overrides: Set after each ENV line, for the paths that differ here (``UV_PROJECT_ENVIRONMENT``).

    Returns:
        The environment the RUN lines ran with.
    """
    env = dict(env)
    for op, args in stages()[0]:
        if op == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(args))
            env.update(overrides)
        elif op == "COPY" and not args.startswith("--"):
            *sources, dest = args.split()
            target = workdir / dest
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif op == "RUN":
            ran = subprocess.run(
                ["bash", "-c", args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
            )
            if ran.returncode != 0:
                raise RuntimeError(f"Dockerfile RUN {args!r} failed ({ran.returncode}):\n{ran.stderr[-3000:]}")
    return env


def without_project_env() -> dict[str, str]:
    """This process's environment without the project's venv, uv project settings, Airflow's or ours."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRANSFERS_", "AIRFLOW_", "UV_", "_AIRFLOW")) and k != "VIRTUAL_ENV"
    }
