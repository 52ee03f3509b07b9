"""The mmrepro command line, on a tiny fixture notebook."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmrepro.publish.cli import main

from .processes import assert_ends

FIXTURE = Path(__file__).parent / "fixtures" / "contract.md"
ROOT = Path(__file__).resolve().parents[1]


def snapshot(build: Path) -> dict[str, bytes]:
    """Every file of the executed notebooks and results, by path, with its bytes."""
    return {str(p.relative_to(build)): p.read_bytes() for d in ("executed", "results")
            for p in sorted((build / d).rglob("*")) if p.is_file()}


def test_list_shows_notebooks_parameters_and_what_each_profile_sets(capsys, monkeypatch):
    from mmrepro.publish import parameters

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "scorecard" in out and "profile: str" in out and "seed: int" in out
    for path in parameters.notebooks(ROOT):
        section = out.split(f"\n{path.stem}  (")[1].split("\n\n")[0]
        for name, values in parameters.profile_values(path).items():
            line = next(x for x in section.splitlines() if x.strip().startswith(f"{name}: "))
            assert all(f"{p} " in line or "every profile" in line for p in values), line


def test_profile_values_are_read_from_the_start_call():
    from mmrepro.publish import parameters

    assert parameters.profile_values(FIXTURE) == {"n_runs": {"smoke": 2, "book": 3, "paper": 4}}
    assert parameters.with_profiles("runs (profile: smoke 2, book 3, paper 4)", {"smoke": 2, "book": 3, "paper": 4}) \
        == "runs (smoke 2, book 3, paper 4)"  # a hand-written list is replaced, not repeated
    assert parameters.with_profiles("noise (dB)", {"smoke": 0.0, "book": 0.0, "paper": 0.0}) == \
        "noise (dB) (every profile: 0.0)"
    assert parameters.with_profiles("levels", {"smoke": "0", "book": "5,0,-5"}) == "levels (smoke 0; book '5,0,-5')"
    long = parameters.with_profiles("lrs", {"paper": [1e-6, 2e-6, 3e-6, 4e-6, 5e-6, 6e-6, 1e-4]})
    assert long == "lrs (paper 7 values, 1e-06 to 0.0001)"
    assert "=" not in parameters.with_profiles("x", {"book": "a=b"})  # papermill stops reading a comment at '='


def test_run_executes_with_parameters(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "--profile", "smoke", "-p", "n_runs", "5", "--build", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results" / "contract.json").read_text())
    assert data["params"]["n_runs"] == 5 and data["profile"] == "smoke"
    assert (tmp_path / "executed" / "contract.ipynb").is_file()
    out = capsys.readouterr().out  # ends with the chapter's claims counted by outcome
    assert "contract, smoke profile, seed 0, " in out and ": 1 claims" in out
    assert "  checks (1): 1 passed" in out and f"every claim: mmrepro claims --build {tmp_path} --chapter contract" in out
    # the notebook's own CPU time beside the wall time, and what moves the last bits besides the seed
    assert 0 < data["cpu_seconds"] and "CPU-min)" in out and "kernels), " in data["device_name"]


def test_the_runs_table_gives_wall_and_cpu_minutes():
    """A results file from before CPU time was recorded gives NaN, shown as a dash."""
    import math

    from mmrepro.publish.scorecard import runs_styled, runs_table

    run = {"notebook": "a", "profile": "book", "seed": 0, "claims": [], "git_sha": "0123456789", "device": "cpu",
           "mmrepro_version": "0.1.0", "seconds": 600.0, "cpu_seconds": 1170.0}
    old = {k: v for k, v in run.items() if k != "cpu_seconds"} | {"notebook": "b"}
    table = runs_table([run, old])
    assert table["wall minutes"].tolist() == [10.0, 10.0] and table["CPU minutes"][0] == 19.5
    assert math.isnan(table["CPU minutes"][1]) and "<td" in runs_styled([run, old]).to_html()
    assert ">—<" in runs_styled([run, old]).to_html().replace(" ", "")




def test_run_rejects_unknown_parameters_and_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "-p", "n_run", "5", "--build", str(tmp_path)]) == 2
    assert "unknown parameter(s) ['n_run']" in capsys.readouterr().err
    assert main(["run", "no-such-chapter"]) == 2
    assert "no notebook called 'no-such-chapter'; choose one of:" in capsys.readouterr().err


@pytest.mark.parametrize("param, message", [
    (["-p", "rate", "three"], "contract: parameter 'rate' must be float, got 'three' (str); nothing was run."),
    (["-p", "rate", "3"], "contract: rate=3.0 is invalid: it must be in (0, 1]; nothing was run."),
    (["-p", "seed", "99999999999999999999"], "seed=99999999999999999999 is out of range: it must be an integer in "
                                             "[0, 4294967295]; nothing was run."),
    (["--profile", "smoke", "-p", "n_runs", "2.5"], "parameter 'n_runs' must be int, got 2.5 (float)"),
    (["-p", "device", "tpu"], "device='tpu' is not understood"),
    (["mind", "-p", "threads", "100000"], "mind: threads=100000 is invalid: it must be between 1 and the"),
    (["miles", "-p", "lr_high", "1e-5"], "miles: lr_high=1e-05 is invalid: it must be at least lr_low; nothing was run."),
])
def test_parameters_are_checked_before_a_kernel_starts(tmp_path, monkeypatch, capsys, param, message):
    """The notebook's own contract (types, profiles, choices, checks, device) runs before any kernel."""
    import papermill

    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started for parameters that cannot be valid")

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    notebook = [] if param[0] == "-p" or param[0].startswith("--") else [param.pop(0)]
    assert main(["run", *(notebook or [str(FIXTURE)]), *param, "--build", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_commands_outside_the_checkout(tmp_path, monkeypatch, capsys):
    """From another folder: --root or MMREPRO_ROOT name the project; a notebook's path brings its own;
    else the checkout the package is imported from is used, and said; with none of them, one line says
    where to run."""
    from mmrepro.publish import parameters

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MMREPRO_ROOT", raising=False)
    assert main(["list", "--root", str(ROOT)]) == 0
    out, err = capsys.readouterr()
    assert "mfh  (notebooks/mfh.md)" in out and err == ""
    monkeypatch.setenv("MMREPRO_ROOT", str(ROOT / "notebooks"))  # a folder inside the checkout will do
    assert main(["export", "mind", "--out", str(tmp_path / "nb")]) == 0 and (tmp_path / "nb" / "mind.ipynb").is_file()
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("MMREPRO_ROOT")
    assert parameters.locate_root(near=FIXTURE) == (ROOT, "notebook")
    assert main(["list"]) == 0  # the checkout this package is imported from
    assert f"mmrepro: project {ROOT} (the checkout this package is installed from" in capsys.readouterr().err
    assert main(["list", "--root", str(tmp_path)]) == 2
    assert f"--root {tmp_path} is not an mmrepro project (no _toc.yml there or above)" in capsys.readouterr().err
    monkeypatch.setattr(parameters, "installed_checkout", lambda: None)  # installed without a checkout
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert "no mmrepro project here" in err and "--root DIR" in err and "MMREPRO_ROOT=DIR" in err


def test_every_notebook_declares_readable_parameters(capsys, monkeypatch):
    """papermill must read every annotated parameter (else `mmrepro run -p` could not set it)."""
    from mmrepro.publish import parameters

    root = Path(__file__).resolve().parents[1]
    for path in parameters.notebooks(root):
        names = {p.name for p in parameters.parameters(path)}
        assert {"profile"} <= names, path.name
        if path.parent.name == "notebooks":
            assert {"seed", "device"} <= names, path.name


def test_unreadable_parameter_line_is_an_error(tmp_path):
    from mmrepro.publish import parameters

    bad = tmp_path / "bad.md"
    bad.write_text(FIXTURE.read_text().replace("# a rate in (0, 1]", "# a rate, e.g. rate = 0.5"))
    with pytest.raises(parameters.BookError, match=r"cannot read parameter\(s\) \['rate'\]"):
        parameters.parameters(bad)


def test_claims_prints_the_scorecard_in_the_terminal(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "--profile", "smoke", "--build", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["claims", "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "1 claims from 1 chapter(s), profile(s) smoke" in out
    assert "contract-demo" in out and "passes" in out and "checks passed" in out
    assert main(["claims", "--results", str(tmp_path / "nowhere")]) == 2
    assert "no results folder" in capsys.readouterr().err


def test_output_is_replaced_only_by_a_run_that_finished(tmp_path, monkeypatch, capsys):
    """A failed run keeps the previous notebook, results and figures byte-identical and says where its
    partial notebook is; a successful one replaces them, figures of the older run included."""
    monkeypatch.chdir(ROOT)
    build = tmp_path / "build"
    assert main(["run", str(FIXTURE), "--profile", "smoke", "--build", str(build)]) == 0
    good = snapshot(build)
    assert {"executed/contract.ipynb", "results/contract.json", "results/contract/runs_2.png"} == set(good)
    capsys.readouterr()
    assert main(["run", str(FIXTURE), "--profile", "smoke", "-p", "n_runs", "5", "-p", "fail", "True", "--build",
                 str(build)]) == 2
    err = capsys.readouterr().err
    assert "contract.md failed (AssertionError: asked to fail)" in err
    assert "executed/contract.ipynb and its results are kept unchanged" in err
    assert f"the partial run is in {build / 'failed' / 'contract.ipynb'}" in err
    assert snapshot(build) == good  # byte-identical: notebook, results file and figures
    partial = json.loads((build / "failed" / "contract.ipynb").read_text())
    assert any("asked to fail" in str(c.get("outputs")) for c in partial["cells"])
    assert sorted(p.name for p in build.iterdir()) == ["executed", "failed", "results"]  # no staging folder left
    assert main(["run", str(FIXTURE), "--profile", "smoke", "-p", "n_runs", "3", "--build", str(build)]) == 0
    assert sorted(p.name for p in (build / "results" / "contract").iterdir()) == ["runs_3.png"]
    assert not (build / "failed" / "contract.ipynb").exists()  # the failure's partial run is obsolete now
    values = json.loads((build / "results" / "contract.json").read_text())["values"]
    assert values["runs_3"] == {"figure": "runs_3.png"} and "runs_2" not in values


def test_build_folder_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    (tmp_path / "f").write_text("x")
    assert main(["run", str(FIXTURE), "--build", str(tmp_path / "f")]) == 2
    assert f"the build folder {tmp_path / 'f'} is a file: pass --build a folder" in capsys.readouterr().err
    assert main(["book", "--no-execute", "--build", str(tmp_path / "f")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_an_interrupted_run_stops_cleanly_and_keeps_the_previous_output(tmp_path):
    """Ctrl-C and SIGTERM: exit 130 with one line saying what was kept, no traceback, the previous output
    byte-identical, no staging folder, no kernel connection file, and the kernel stopped."""
    build, tmp, runtime = tmp_path / "build", tmp_path / "tmp", tmp_path / "runtime"
    tmp.mkdir()
    runtime.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp), "JUPYTER_RUNTIME_DIR": str(runtime)}
    cli = [sys.executable, "-m", "mmrepro.publish.cli", "run", str(FIXTURE), "--profile", "smoke", "--build", str(build)]
    subprocess.run(cli, cwd=ROOT, env=env, check=True, capture_output=True)
    good = snapshot(build)
    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        pid_file = tmp_path / f"kernel-{name}.pid"
        proc = subprocess.Popen([*cli, "-p", "n_runs", "4", "-p", "sleep", "300.0", "-p", "pid_file", str(pid_file)],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 240
        while not pid_file.is_file() or not pid_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the notebook never reached its last cell"
            time.sleep(0.5)
        kernel = int(pid_file.read_text())
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        said = [line for line in err.splitlines() if line.startswith("mmrepro:")]
        assert said == [f"mmrepro: contract interrupted ({name}): the previous {build / 'executed' / 'contract.ipynb'} "
                        f"and its results are kept unchanged; the partial run is in "
                        f"{build / 'failed' / 'contract.ipynb'}."], err
        assert "Traceback" not in err, err
        assert snapshot(build) == good
        assert sorted(p.name for p in build.iterdir()) == ["executed", "failed", "results"]
        assert not list(tmp.glob("*.json")) and not list(runtime.iterdir())  # no kernel connection file left
        assert_ends(kernel, name)  # the kernel was stopped with the run
