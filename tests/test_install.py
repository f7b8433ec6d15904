"""A NON-editable install into a fresh venv, used from another folder: the `newsrag` command works, writes
its store under the working directory (never into site-packages) and finds the shipped corpus.

To keep CI time sane the fresh venv does not download the dependencies again: a .pth file puts the
test interpreter's own site-packages after the fresh venv's, so the heavy libraries come from there
while `rag`, `ingest` and `app` come only from the wheel installed with `pip install --no-deps`. (A
.pth path entry does not run that folder's own .pth files, so this checkout's editable install, if
any, stays invisible to the fresh venv.)
"""
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["pyproject.toml", "README.md", "app.py", "rag", "ingest", "evals", "corpus"]
STORIES = ["2023-08-03-alibaba-open-sources-qwen-7b.md", "2023-11-20-nvidia-announces-h200.md",
           "2022-05-09-nvidia-h100-hopper-chip.md"]


def run(cmd, cwd, env, timeout=600):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("install")
    src = base / "src"            # a copy, so the build writes nothing into the checkout
    src.mkdir()
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", ".stores", "reports"))
        else:
            shutil.copy(p, src / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(base / "dist"),
         str(src)], base, env)
    wheel = next((base / "dist").glob("newsrag-*.whl"))
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], base, env)
    py = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], base, env)
    purelib = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], base, env)
                   .stdout.strip())
    shared = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(p).is_dir()]
    (purelib / "zz_newsrag_test_shared_deps.pth").write_text("\n".join(shared) + "\n")
    work = base / "elsewhere"     # not the checkout, not the venv
    work.mkdir()
    for name in STORIES:
        shutil.copy(ROOT / "corpus" / name, work / name)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRAG_")}
    run_env.update({"NEWSRAG_TODAY": "2026-06-01", "PYTHONDONTWRITEBYTECODE": "1"})
    return {"venv": venv, "py": py, "bin": venv / "bin", "purelib": purelib, "work": work, "env": run_env}


def test_code_comes_from_the_wheel_not_the_checkout(installed):
    out = run([str(installed["py"]), "-c", "import rag, ingest, app; print(rag.__file__, ingest.__file__, app.__file__)"],
              installed["work"], installed["env"]).stdout.split()
    assert all(Path(p).is_relative_to(installed["purelib"]) for p in out), out


def test_newsrag_lists_every_subcommand(installed):
    out = run([str(installed["bin"] / "newsrag"), "--help"], installed["work"], installed["env"]).stdout
    for cmd in ("ingest", "ask", "retrieve", "batch", "serve", "mcp", "app"):
        assert cmd in out
    for cmd in ("ingest", "serve", "mcp", "app"):
        assert "usage:" in run([str(installed["bin"] / "newsrag"), cmd, "--help"], installed["work"],
                               installed["env"]).stdout


def test_ingest_and_ask_use_a_store_in_the_working_directory(installed):
    work, env, newsrag = installed["work"], installed["env"], str(installed["bin"] / "newsrag")
    report = json.loads(run([newsrag, "ingest", *STORIES, "--json", "--no-progress"], work, env).stdout)
    assert report["new"] == len(STORIES) and (work / report["store"]).resolve() == (work / "store").resolve()
    assert (work / "store").is_dir() and not (installed["purelib"] / "store").exists()
    d = json.loads(run([newsrag, "ask", "What did Nvidia announce about the H200?", "--json"], work, env).stdout)
    assert not d["refused"] and d["citations"]
    assert any("h200" in c["title"].lower() for c in d["citations"])
    # `python -m rag` and `python -m ingest` still work from the installed packages
    stats = json.loads(run([str(installed["py"]), "-m", "rag", "stats", "--json"], work, env).stdout)
    assert stats["stories"] == len(STORIES)
    assert "usage:" in run([str(installed["py"]), "-m", "ingest", "--help"], work, env).stdout


def test_the_shipped_corpus_is_inside_the_package(installed):
    out = run([str(installed["py"]), "-c", "from rag.settings import Settings; s = Settings(); "
               "print(s.corpus_dir); print(s.store_dir); print(s.feedback_path)"],
              installed["work"], installed["env"]).stdout.split("\n")
    corpus = Path(out[0])
    assert corpus.is_relative_to(installed["purelib"])
    assert sorted(p.name for p in corpus.glob("*.md")) == sorted(p.name for p in (ROOT / "corpus").glob("*.md"))
    assert out[1] == "store" and out[2] == "feedback/feedback.jsonl"   # relative: resolved in the working dir
