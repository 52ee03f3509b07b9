"""The mmrepro command line, on a tiny fixture notebook."""
from __future__ import annotations

import json
from pathlib import Path

from mmrepro.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "contract.md"


def test_list_shows_notebooks_and_parameters(capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "scorecard" in out and "profile: str" in out and "seed: int" in out


def test_run_executes_with_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "--profile", "smoke", "-p", "n_runs", "5", "--build", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "results" / "contract.json").read_text())
    assert data["params"]["n_runs"] == 5 and data["profile"] == "smoke"
    assert (tmp_path / "executed" / "contract.ipynb").is_file()


def test_run_rejects_unknown_parameters_and_notebooks(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "-p", "n_run", "5", "--build", str(tmp_path)]) == 2
    assert "unknown parameter(s) ['n_run']" in capsys.readouterr().err
    assert main(["run", "no-such-chapter"]) == 2
    assert "no notebook called 'no-such-chapter'; choose one of:" in capsys.readouterr().err


def test_invalid_value_fails_inside_the_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    assert main(["run", str(FIXTURE), "-p", "rate", "3", "--build", str(tmp_path)]) == 2
    assert "rate=3.0 is invalid: it must be in (0, 1]" in capsys.readouterr().err


def test_outside_a_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 2
    assert "no _toc.yml found" in capsys.readouterr().err


def test_every_notebook_declares_readable_parameters(capsys, monkeypatch):
    """papermill must read every annotated parameter (else `mmrepro run -p` could not set it)."""
    from mmrepro import book

    root = Path(__file__).resolve().parents[1]
    for path in book.notebooks(root):
        names = {p.name for p in book.parameters(path)}
        assert {"profile"} <= names, path.name
        if path.parent.name == "notebooks":
            assert {"seed", "device"} <= names, path.name


def test_unreadable_parameter_line_is_an_error(tmp_path):
    import pytest

    from mmrepro import book

    bad = tmp_path / "bad.md"
    bad.write_text(FIXTURE.read_text().replace("# a rate in (0, 1]", "# a rate, e.g. rate = 0.5"))
    with pytest.raises(book.BookError, match=r"cannot read parameter\(s\) \['rate'\]"):
        book.parameters(bad)


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
