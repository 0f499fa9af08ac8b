"""The one recipe for the real data (``book/params/real-blocked.yaml``): its settings are the published recipe's
on the leak-free split, and every real-data training command on the pages comes from it.

A page's *real-data task command* is a command in a code block or an inline code span (``s12ls norm|cache|
train|evaluate|splits``, ``papermill`` of chapters 04–06, ``torchrun``, ``python benchmarks/…``) that names
real data (``data/real``, ``data/reference/tasks``, a recipe file or a recipe run). Each must be one of the
recipe's commands, or one of the reproduction commands of the published, leaking protocol
(``book/params/published-recipe.yaml``) in a section that says it leaks, with at most execution options added
(``--workers``, ``--scheduler``, ``--nproc``, ``--resume``; ``torchrun … -m s12ls_utils.cli train`` reads as
``s12ls train … --nproc``). The commands themselves run end to end in ``tests/test_cli_data.py``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import parameter_defaults

from s12ls_utils import reference
from s12ls_utils.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "book" / "params" / "real-blocked.yaml"
REPRODUCTION = ROOT / "book" / "params" / "published-recipe.yaml"
CH05 = ROOT / "book" / "05-baseline-training.ipynb"
CH06 = ROOT / "book" / "06-positive-class-evaluation.ipynb"
#: Pages that show the real-data recipe, and the recipe commands each must show (once on the first three).
PAGES = {
    "README.md": ("norm", "cache", "train", "evaluate"),
    "book/intro.md": ("norm", "cache", "train", "evaluate"),
    "book/appendix-full-scale.md": ("norm", "cache", "train", "evaluate"),
    "book/05-baseline-training.ipynb": ("norm", "papermill-05"),
    "book/06-positive-class-evaluation.ipynb": ("papermill-06",),
}
#: Options a page may add to a recipe command: where and how it runs, not what it computes.
RUN_OPTIONS = {"--workers", "--scheduler", "--nproc", "--resume"}
PROGRAMS = ("s12ls", "papermill", "torchrun", "python")
TASK_SUBCOMMANDS = {"norm", "cache", "train", "evaluate", "splits"}
REAL = re.compile(r"data/real|data/reference/tasks|real-blocked|published-recipe|runs/(?:real|published)")


# --------------------------------------------------------------------------------------------------
# Reading commands
# --------------------------------------------------------------------------------------------------
def _joined(lines: list[str]) -> list[str]:
    """Shell lines with ``\\`` continuations joined, comments and blank lines dropped."""
    out, cur = [], ""
    for line in lines:
        line = "" if line.lstrip().startswith("#") else re.sub(r"\s+#\s.*$", "", line).rstrip()
        if not line.strip() and not cur:
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append(" ".join((cur + line).split()))
        cur = ""
    return [c for c in out if c]


def recipe_commands(path: Path = RECIPE) -> list[str]:
    """The commands written in a parameter file's header (comment lines indented by three spaces)."""
    return _joined([line[1:] for line in path.read_text().splitlines() if line.startswith("#   ")])


def _units(path: Path) -> list[str]:
    """A page as units of text: markdown sections (split at headings), or a notebook's markdown cells."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text())
        return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    text = re.sub(r"```.*?```", lambda m: m.group(0).replace("\n#", "\n\x00"), path.read_text(), flags=re.S)
    return [u.replace("\x00", "#") for u in re.split(r"\n(?=#{1,6} )", text)]


def _commands(text: str) -> list[str]:
    """The commands of a unit of text: every line of its fenced code blocks and its inline code spans that
    start with a program."""
    found = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S):
        found += _joined(block.splitlines())
    for span in re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", " ", text, flags=re.S)):
        found.append(span.strip())
    return [c for c in found if _program(c) in PROGRAMS]


def _program(cmd: str) -> str:
    first = cmd.split()[0] if cmd.split() else ""
    return first.removeprefix(".venv/bin/")


def _tokens(cmd: str) -> list[str]:
    tokens = shlex.split(cmd)
    tokens[0] = tokens[0].removeprefix(".venv/bin/")
    if tokens[0] == "torchrun" and "-m" in tokens:  # torchrun … -m s12ls_utils.cli train ARGS = s12ls train
        i = tokens.index("-m")
        if tokens[i + 1 : i + 3] == ["s12ls_utils.cli", "train"]:
            return ["s12ls", "train", *tokens[i + 3 :], "--nproc", "N"]
    return tokens


def is_real_task_command(cmd: str) -> bool:
    t = _tokens(cmd)
    if not REAL.search(cmd):
        return False
    if t[0] == "s12ls":
        return len(t) > 1 and t[1] in TASK_SUBCOMMANDS
    if t[0] == "papermill":
        return len(t) > 1 and re.search(r"book/0[4-6]-", t[1]) is not None
    return t[0] in ("torchrun", "python")


def _parts(cmd: str) -> tuple[tuple[str, ...], Counter]:
    """(positional tokens up to the first option, multiset of (option, values)); papermill's ``-p NAME VALUE``
    counts as the option ``-p NAME``."""
    t = _tokens(cmd)
    i = next((k for k, tok in enumerate(t) if tok.startswith("-") and k > 0), len(t))
    head, opts, k = tuple(t[:i]), Counter(), i
    while k < len(t):
        name, k = t[k], k + 1
        if name in ("-p", "-y") and k < len(t):
            name, k = f"{name} {t[k]}", k + 1
        vals = []
        while k < len(t) and not t[k].startswith("-"):
            vals.append(t[k])
            k += 1
        opts[(name, tuple(vals))] += 1
    return head, opts


def matches(cmd: str, recipe: str) -> bool:
    """``cmd`` is ``recipe`` with at most :data:`RUN_OPTIONS` added."""
    head, opts = _parts(cmd)
    r_head, r_opts = _parts(recipe)
    extra = opts - r_opts
    return head == r_head and not (r_opts - opts) and all(name in RUN_OPTIONS for name, _ in extra)


def _named(commands: list[str]) -> dict[str, str]:
    """The recipe's blocked-split commands by role: norm, cache, train, evaluate, papermill-05, papermill-06."""
    out = {}
    for c in commands:
        t = _tokens(c)
        role = t[1] if t[0] == "s12ls" else f"papermill-{t[1][5:7]}" if t[0] == "papermill" else t[0]
        if "regions" not in c and "real-europe" not in c:
            out.setdefault(role, c)
    return out


# --------------------------------------------------------------------------------------------------
# The recipe file
# --------------------------------------------------------------------------------------------------
def test_recipe_has_the_steps_in_order():
    named = _named(recipe_commands())
    assert list(named) == ["download", "norm", "cache", "train", "evaluate", "papermill-05", "papermill-06"]
    task = "data/real/data_harmonized/tasks/S12LS-LD-blocked"
    params = yaml.safe_load(RECIPE.read_text())
    assert (
        _parts(named["norm"])[0][2] == "data/reference/tasks/S12LS-LD-blocked"
    )  # from the released folder …
    for role in ("cache", "train"):  # … to the copy norm writes (DATA/tasks), which the rest reads
        assert _parts(named[role])[0][2] == task
    assert params["task_dir"] == task and params["data_dir"] == "data/real/data_harmonized"
    assert ("--config", ("book/params/real-blocked.yaml",)) in _parts(named["train"])[1]
    run = f"runs/{params['run_name']}"
    assert _parts(named["evaluate"])[0][2] == run and run in named["papermill-06"]
    assert ("-f", ("book/params/real-blocked.yaml",)) in _parts(named["papermill-05"])[1]
    # the region folds: the same steps on S12LS-LD-regions/<fold>
    folds = [c for c in recipe_commands() if "S12LS-LD-regions" in c]
    assert {_tokens(c)[1] for c in folds} >= {"norm", "cache", "train"}
    assert all(f in RECIPE.read_text() for f in reference.region_folds())
    assert not re.search(r"S12LS-(LD|AD)-strict|tasks/S12LS-LD/harmonized", RECIPE.read_text())


def test_recipe_settings_are_the_published_recipe_on_the_blocked_split():
    """Same settings as the published recipe (whole patches, no early stopping), only the task, seed and run
    differ; every key is a chapter 05 parameter and a TrainConfig setting (papermill -f and s12ls train
    --config read the same file)."""
    real, pub = yaml.safe_load(RECIPE.read_text()), yaml.safe_load(REPRODUCTION.read_text())
    differ = {k for k in real.keys() | pub.keys() if real.get(k) != pub.get(k)}
    assert differ == {"task_dir", "run_name", "seed"}, differ
    assert real["crop"] is None and real["patience"] is None and real["device"] == "cuda"
    proto = reference.PUBLISHED_PROTOCOL
    assert str(real["epochs"]) == proto["epochs"] and proto["batch"].startswith(
        f"{real['batch_size']}, whole"
    )
    assert (
        f"pos_weight {real['pos_weight']}" in proto["loss"]
        and f"weight decay {real['weight_decay']}" in (proto["optimiser"])
    )
    assert real["seed"] in {
        int(x) for x in re.findall(r"\d+", proto["seeds"].partition("(")[2])
    }  # a published seed
    TrainConfig.from_dict(real)  # every key a training setting
    names = set(parameter_defaults(CH05))
    assert set(real) <= names, set(real) - names
    assert "leak" in REPRODUCTION.read_text() and "real-blocked.yaml" in REPRODUCTION.read_text()


# --------------------------------------------------------------------------------------------------
# The pages
# --------------------------------------------------------------------------------------------------
def test_command_reader():
    text = "x\n```bash\n.venv/bin/s12ls cache data/real/t \\\n    --sensors s2   # note\n```\n`s12ls splits data/sample`"
    assert _commands(text) == [".venv/bin/s12ls cache data/real/t --sensors s2", "s12ls splits data/sample"]
    rec = "s12ls train data/real/x --config c.yaml"
    assert matches("s12ls train data/real/x --config c.yaml --nproc 4 --resume", rec)
    assert matches(
        "torchrun --standalone --nproc-per-node 4 -m s12ls_utils.cli train data/real/x --config c.yaml", rec
    )
    assert not matches("s12ls train data/real/x --config c.yaml --epochs 50", rec)
    assert not matches("s12ls train data/real/x", rec)
    p = "papermill book/05-b.ipynb o.ipynb -p device cuda -p epochs 50"
    assert is_real_task_command(
        p.replace("cuda", "cuda -p data_dir data/real/d")
    ) and not is_real_task_command(p)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).stem)
def test_real_data_commands_come_from_the_recipe(page):
    recipe, reproduction = recipe_commands(), recipe_commands(REPRODUCTION)
    path = ROOT / page
    wrong, shown = [], Counter()
    for unit in _units(path):
        for cmd in _commands(unit):
            if not is_real_task_command(cmd):
                continue
            if any(matches(cmd, r) for r in recipe):
                shown[" ".join(_tokens(cmd))] += 1
            elif any(matches(cmd, r) for r in reproduction):
                if "leak" not in unit:
                    wrong.append(f"{cmd!r}: reproduces the published split without saying that it leaks")
            else:
                wrong.append(f"{cmd!r}: not a command of {RECIPE.relative_to(ROOT)}")
    assert not wrong, f"{page}: " + "; ".join(wrong)
    named = _named(recipe)
    for role in PAGES[page]:
        n = shown[" ".join(_tokens(named[role]))]
        assert n >= 1, f"{page} does not show the recipe's {role} command: {named[role]}"
        if path.suffix == ".md":
            assert n == 1, f"{page} shows the recipe's {role} command {n} times: show the recipe once"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).stem)
def test_no_page_recommends_a_split_that_leaks(page):
    """No strict preset; the published task folders only where the page says that they leak; S12LS-AD only
    from the raw folder (the harmonized one of the vendored commit is annotated-only)."""
    for unit in _units(ROOT / page):
        assert not re.search(r"S12LS-(LD|AD)-strict", unit), f"{page} names a strict preset:\n{unit[:300]}"
        if re.search(r"tasks/S12LS-LD/(harmonized|raw)", unit):
            assert "leak" in unit, f"{page} points at the published S12LS-LD split without saying it leaks"
        if "tasks/S12LS-AD/harmonized" in unit:
            assert "annotated" in unit, f"{page} points at the annotated-only S12LS-AD/harmonized folder"
