"""A plain (non-editable) install ships the zoo: cards and weights land in <prefix>/share/crossmedia/.

The wheel is built offline with the project venv's pip and setuptools (``--no-build-isolation
--no-index``) from a copy of the files the build reads, so the shared checkout gets no build/ or
egg-info from a test. It is installed into a fresh venv; that venv borrows torch & co. from the
project venv through PYTHONPATH, which does not process ``.pth`` files, so the editable checkout
stays out of reach and ``crossmedia`` must come from the new install.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LOAD = """\
import json, sys
import crossmedia
from crossmedia import zoo
from crossmedia.core import paths
name = zoo.list_models()[0].name
m = zoo.load(name)
print(json.dumps({"file": crossmedia.__file__, "prefix": sys.prefix, "checkout": str(paths.checkout_root()),
                  "names": [e.name for e in zoo.list_models()], "name": name, "cls": type(m).__name__,
                  "training": m.training, "weights": str(zoo.resolve_weights(zoo.card(name))),
                  "params": sum(p.numel() for p in m.parameters())}))
"""


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-6000:]}"
    return proc


def test_wheel_ships_the_zoo_and_loads_outside_the_checkout(tmp_path):
    from crossmedia import zoo
    from crossmedia.core import paths

    root = paths.checkout_root()
    if root is None:
        pytest.skip("crossmedia is not running from a source checkout; nothing to build a wheel from")
    if not zoo.list_models():
        pytest.skip("the zoo has no cards yet (zoo.list_models() is empty): nothing to ship or load")
    cards = sorted(p.relative_to(root / "zoo").as_posix() for p in (root / "zoo").glob("*/*.yaml"))
    weights = sorted(p.name for p in (root / "checkpoints").glob("*.safetensors"))

    # build from a copy of what setup.cfg reads
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        if (root / name).is_file():
            shutil.copy2(root / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("src", "zoo", "checkpoints"):
        shutil.copytree(root / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--disable-pip-version-check", "-w", str(wheels), str(source)])
    [wheel] = wheels.glob("crossmedia-*.whl")

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    [data_dir] = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".data")}
    share = f"{data_dir}/data/share/crossmedia/"
    shipped_cards = sorted(n[len(share) + len("zoo/"):] for n in names if n.startswith(share + "zoo/"))
    shipped_weights = sorted(n[len(share) + len("checkpoints/"):] for n in names if n.startswith(share + "checkpoints/"))
    assert shipped_cards == cards, "every card in zoo/ must ship (setup.cfg [options.data_files])"
    assert shipped_weights == weights, "every file in checkpoints/ must ship (setup.cfg [options.data_files])"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--disable-pip-version-check", str(wheel)])

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CROSSMEDIA_", "PYTHON"))}
    env.update(PYTHONPATH=sysconfig.get_paths()["purelib"], CROSSMEDIA_HOME=str(tmp_path / "home"),
               OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = json.loads(_run([str(python), "-c", LOAD], cwd=work, env=env).stdout.strip().splitlines()[-1])
    assert Path(out["file"]).is_relative_to(venv), out["file"]  # the installed copy, not the checkout
    assert Path(out["prefix"]) == venv and out["checkout"] == "None"
    assert sorted(out["names"]) == sorted(Path(c).stem for c in cards)
    assert Path(out["weights"]) == venv / "share" / "crossmedia" / "checkpoints" / zoo.card(out["name"]).weights["file"]
    assert out["cls"] == type(zoo.load(out["name"])).__name__ and out["training"] is False and out["params"] > 0
