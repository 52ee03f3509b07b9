"""Plain papermill runs an exported chapter; the publishing workflow builds what the README says."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from mmrepro.publish import book, claims, parameters
from mmrepro.publish.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "contract.md"
PAPERMILL = Path(sys.executable).parent / "papermill"


def test_export_writes_papermill_ready_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(["export", "--out", str(tmp_path)]) == 0
    chapters = [p for p in parameters.notebooks(ROOT) if p.parent.name == "notebooks"]
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == sorted(f"{c.stem}.ipynb" for c in chapters)
    for chapter in chapters:
        nb = nbformat.read(tmp_path / f"{chapter.stem}.ipynb", as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3" and "jupytext" not in nb.metadata
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "profile: str" in tagged[0].source
        helped = subprocess.run([str(PAPERMILL), "--help-notebook", str(tmp_path / f"{chapter.stem}.ipynb")],
                                capture_output=True, text=True, check=True).stdout
        for p in parameters.parameters(chapter):
            assert re.search(rf"\b{p.name}: {p.type} \(default ", helped), (chapter.stem, p.name)
        for name, values in parameters.profile_values(chapter).items():  # what smoke, book and paper set
            shown = re.search(rf"\b{name}: [^\n]*(?:\n {{20,}}[^\n]*)?", helped).group(0)  # help: same or next line
            assert "every profile" in shown or all(f"{p} " in shown for p in values), shown
    assert main(["export", "nowhere", "--out", str(tmp_path)]) == 2
    assert "no notebook called 'nowhere'" in capsys.readouterr().err


def test_plain_papermill_runs_an_exported_notebook(tmp_path):
    out = tmp_path / "nb"
    book.export([FIXTURE], out)
    env = {**os.environ, "MMREPRO_RESULTS": str(tmp_path / "results")}
    subprocess.run([str(PAPERMILL), str(out / "contract.ipynb"), str(tmp_path / "done.ipynb"), "-p", "profile", "smoke",
                    "-p", "seed", "3", "-p", "n_runs", "7"], cwd=tmp_path, env=env, check=True, capture_output=True)
    data = json.loads((tmp_path / "results" / "contract.json").read_text())
    assert data["profile"] == "smoke" and data["seed"] == 3 and data["params"]["n_runs"] == 7
    assert data["param_sources"] == {"profile": "user", "seed": "user", "device": "default", "n_runs": "user",
                                     "rate": "default", "fail": "default", "sleep": "default", "pid_file": "default"}
    assert data["git_sha"] and data["mmrepro_version"]
    for record in data["claims"]:
        claims.validate(record)
    bad = subprocess.run([str(PAPERMILL), str(out / "contract.ipynb"), str(tmp_path / "bad.ipynb"), "-p", "rate", "3"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "rate=3.0 is invalid: it must be in (0, 1]" in bad.stderr + bad.stdout


def test_parameters_dropdown_lists_values_and_sources():
    text = book.parameters_dropdown({"profile": "book", "seed": 0, "device": "cpu", "params": {"profile": "book",
                                     "seed": 0, "views": "a|b"}, "param_sources": {"profile": "user", "seed": "default"}})
    assert text.startswith(":::{dropdown} Parameters of this run") and text.endswith(":::")
    assert "| `profile` | `'book'` | user |" in text and "| `views` | `'a\\|b'` | — |" in text


def test_the_publishing_workflow_builds_with_the_readme_command():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    build = next(s for s in steps if s.get("name") == "Build the book")
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- build-command -->\s*```bash\n(.+?)\n```", readme, re.S).group(1).strip()
    assert build["run"].strip() == block
    upload = next(s for s in steps if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/site/_build/html"
    assert any("deploy-pages" in s.get("uses", "") for s in workflow["jobs"]["deploy"]["steps"])


def test_mmrepro_engine_reads_a_reply_a_blocking_wait_would_miss():
    """`--engine mmrepro`: a wait without timeout polls in slices, so it returns a message that a single
    blocking wait never would (jupyter/nbclient#312); waits with a timeout are passed through."""
    import asyncio
    from queue import Empty

    from papermill.engines import papermill_engines

    from mmrepro.publish import papermill_engine

    class Channel:  # a socket whose blocking wait misses the message; timed waits see it the third time
        def __init__(self):
            self.waits = []

        async def get_msg(self, timeout=None):
            self.waits.append(timeout)
            if timeout is None:
                await asyncio.sleep(3600)
            if len(self.waits) < 3:
                raise Empty
            return {"msg": "reply"}

    channel = Channel()
    papermill_engine.patient(channel)
    assert asyncio.run(asyncio.wait_for(channel.get_msg(), 10)) == {"msg": "reply"}
    assert channel.waits == [papermill_engine.POLL_SECONDS] * 3
    assert asyncio.run(channel.get_msg(timeout=7)) == {"msg": "reply"} and channel.waits[-1] == 7
    assert papermill_engines.get_engine("mmrepro") is papermill_engine.PatientEngine


def test_mmrepro_engine_starts_a_kernel_again_when_it_dies_before_answering(tmp_path, monkeypatch):
    """A kernel that exits before it answers (as one does that lost its port to a kernel started at
    the same moment) is started again, and the notebook runs."""
    import json
    import sys

    import nbformat
    import papermill

    from mmrepro.publish import papermill_engine

    marker, script = tmp_path / "died", tmp_path / "dies_once.py"
    script.write_text(f"import os, sys\nif not os.path.exists({str(marker)!r}):\n    open({str(marker)!r}, 'w').close()\n"
                      "    sys.exit(1)\nos.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', *sys.argv[1:]])\n")
    spec = tmp_path / "jupyter" / "kernels" / "dies-once"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [sys.executable, str(script), "-f", "{connection_file}"],
                                                  "display_name": "dies once", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    source = tmp_path / "in.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")]), str(source))
    out = papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="dies-once",
                                     engine_name=papermill_engine.ENGINE, progress_bar=False)
    assert marker.is_file() and out.cells[0].outputs[0]["text"].strip() == "42"


def test_the_progress_bar_names_the_section_being_run():
    """`mmrepro run`'s progress bar (papermill's, through the mmrepro engine) says which section runs."""
    import nbformat
    import papermill.engines  # noqa: F401 - first: it loads the engine entry points, this one among them

    from mmrepro.publish import papermill_engine

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [code("x = 1"), md("# Title\n\ntext"), code("y"), md("## Theorem 1: a bound\n### Proof"), code("z"),
             md("no heading here"), code("w")]
    assert papermill_engine.sections(cells) == ["", "Title", "Title", "Proof", "Proof", "Proof", "Proof"]

    class Bar:
        desc, disable = "mfh", False

        def set_description(self, text):
            self.desc = text

    class Manager:
        nb, pbar, started = nbformat.v4.new_notebook(cells=cells), Bar(), []

        def cell_start(self, cell, cell_index=None, **kwargs):
            self.started.append(cell_index)

    manager = Manager()
    papermill_engine.follow_sections(manager)
    manager.cell_start(cells[4], 4)
    assert manager.started == [4] and manager.pbar.desc == "mfh · Proof"
