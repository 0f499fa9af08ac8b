"""Binder can build the book's environment and every chapter finds its data there.

Binder itself cannot be reached from CI, so this checks what it depends on: `environment.yml` carries
the same pins as `pyproject.toml` and installs this package; `postBuild` is an executable bash script
whose commands exist and write the synthetic sample where the chapters look for it by default (its
`s12ls synth` line is run here, on a small size, in a temporary folder); the launch settings in
`_config.yml` and the README's Binder badge name the same repository and branch.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import parameter_defaults

from s12ls_utils import io, schema

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POSTBUILD = ROOT / "postBuild"
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]-*.ipynb"))


def _norm(name: str) -> str:
    """Package names as pip compares them (PEP 503); conda-forge uses the same spelling for these."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    pins = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", req)
        assert m, f"pyproject.toml: {req!r} is not an exact pin"
        pins[_norm(m[1])] = m[2]
    return pins


def _environment() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(conda pins, pip pins, other pip lines) of environment.yml."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip, other = {}, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
                if m:
                    pip[_norm(m[1])] = m[2]
                else:
                    other.append(line)
        else:
            name, _, version = dep.partition("=")
            conda[_norm(name)] = version
    return conda, pip, other


def _postbuild_commands() -> list[list[str]]:
    lines = [ln.strip() for ln in POSTBUILD.read_text().splitlines()]
    return [shlex.split(ln) for ln in lines if ln and not ln.startswith("#") and not ln.startswith("set ")]


def test_environment_pins_match_pyproject():
    conda, pip, _ = _environment()
    env_pins = {**conda, **pip}
    assert not set(conda) & set(pip), f"pinned twice: {set(conda) & set(pip)}"
    py = env_pins.pop("python")
    env_pins.pop("pip")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={py}" in requires, f"environment.yml python={py} but pyproject requires {requires}"
    assert env_pins == _pyproject_pins()


def test_environment_installs_this_package_once():
    _, _, other = _environment()
    assert other.count("-e .") == 1, "environment.yml's pip section must install the package (-e .)"
    # postBuild does not install it a second time
    for cmd in _postbuild_commands():
        assert not ({"pip", "pip3"} & set(cmd) and "install" in cmd), f"postBuild reinstalls: {cmd}"


def test_postbuild_is_an_executable_bash_script():
    mode = POSTBUILD.stat().st_mode
    assert mode & stat.S_IXUSR, "postBuild must be executable (repo2docker runs it as ./postBuild)"
    text = POSTBUILD.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -euo pipefail$", text, re.M), "postBuild must stop at the first failing command"
    subprocess.run(["bash", "-n", str(POSTBUILD)], check=True)


def test_postbuild_commands_exist():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = _postbuild_commands()
    assert commands, "postBuild runs nothing"
    for cmd in commands:
        assert cmd[0] in scripts, f"postBuild runs {cmd[0]!r}, which this package does not install"
        assert (BIN / cmd[0]).exists(), f"{cmd[0]} is not installed in {BIN}"
        help_run = subprocess.run([str(BIN / cmd[0]), *cmd[1:2], "--help"], capture_output=True, text=True)
        assert help_run.returncode == 0, f"{cmd[:2]}: {help_run.stderr}"


@pytest.mark.slow
def test_postbuild_writes_the_sample_the_chapters_read(tmp_path):
    (synth,) = [c for c in _postbuild_commands() if c[:2] == ["s12ls", "synth"]]
    target = synth[2]
    for nb in CHAPTERS:
        assert parameter_defaults(nb).get("data_dir") == target, f"{nb.name} reads another folder by default"
    # the same command line, smaller, from a fresh checkout's root (here: an empty folder)
    run = subprocess.run(
        [str(BIN / "s12ls"), *synth[1:], "--n-per-sensor", "4", "--workers", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path / target
    assert (out / "synthetic_manifest.json").exists()
    files = sorted(out.glob("*/*.nc"))
    assert files and {f.parent.name for f in files} <= set(schema.SENSORS)
    for f in files:
        assert not io.validate_patch(f), f"{f.name}: {io.validate_patch(f)}"


def test_launch_settings_and_badge_name_one_repository():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url, branch = cfg["repository"]["url"], cfg["repository"]["branch"]
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    assert m, f"repository.url {url!r} is not a GitHub repository"
    owner, repo = m.groups()
    launch = cfg["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org"
    assert launch["notebook_interface"] == "jupyterlab"
    readme = (ROOT / "README.md").read_text()
    name = r"([A-Za-z0-9_.\-]+)"
    badges = re.findall(rf"https://mybinder\.org/v2/gh/{name}/{name}/{name}\?labpath=([^)\s]+)", readme)
    assert badges, "README.md has no Binder badge with ?labpath="
    for b_owner, b_repo, b_branch, labpath in badges:
        assert (b_owner, b_repo, b_branch) == (owner, repo, branch)
        assert (ROOT / labpath).exists(), f"the badge opens {labpath}, which does not exist"
