"""The notebook contract: parameter validation, results files, claims."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mmrepro.publish import scorecard
from mmrepro.publish.notebook import (
    ChapterRun,
    ParameterError,
    Params,
    _injected_names,
    resolve_parameters,
    to_jsonable,
)

DECLARED = {"profile": str, "seed": int, "device": str, "n_seeds": int, "lr": float, "tag": str | None}
PROFILES = {"smoke": {"n_seeds": 2}, "book": {"n_seeds": 5}, "paper": {"n_seeds": 10}}
BASE = {"profile": "smoke", "seed": 0, "device": "cpu", "n_seeds": None, "lr": 0.1, "tag": None}


def resolve(**changes):
    return resolve_parameters(DECLARED, {**BASE, **changes}, PROFILES, injected=set(changes))


def test_profile_fills_unset_values_and_explicit_values_win():
    assert resolve()["n_seeds"] == 2
    assert resolve(profile="paper")["n_seeds"] == 10
    assert resolve(profile="paper", n_seeds=3)["n_seeds"] == 3


def test_int_is_accepted_for_float_but_bool_is_not_int():
    assert resolve(lr=1)["lr"] == 1.0 and isinstance(resolve(lr=1)["lr"], float)
    with pytest.raises(ParameterError, match="'seed' must be int, got the boolean True"):
        resolve(seed=True)


@pytest.mark.parametrize("changes, message", [
    ({"profile": "fast"}, "profile='fast' is not one of smoke, book, paper"),
    ({"seed": "1"}, "'seed' must be int, got '1'"),
    ({"seed": -1}, r"seed=-1 is out of range: it must be an integer in \[0, 4294967295\]"),
    ({"seed": 2**70}, r"seed=1180591620717411303424 is out of range"),
    ({"lr": float("nan")}, "'lr' must be finite"),
    ({"n_seeds": 2.5}, "'n_seeds' must be int"),
])
def test_invalid_values_are_rejected_with_a_clear_message(changes, message):
    with pytest.raises(ParameterError, match=message):
        resolve(**changes)


def test_unknown_injected_name_lists_the_accepted_ones():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) 'n_seed'.*accepts: device, lr, n_seeds"):
        resolve_parameters(DECLARED, BASE, PROFILES, injected={"n_seed"})


def test_choices_checks_and_missing_values():
    with pytest.raises(ParameterError, match=r"lr=0.1 is invalid: it must be below 0.05"):
        resolve_parameters(DECLARED, BASE, PROFILES, checks={"lr": (lambda v: v < 0.05, "below 0.05")})
    with pytest.raises(ParameterError, match=r"tag='x' is not one of \['a', 'b'\]"):
        resolve_parameters(DECLARED, {**BASE, "tag": "x"}, PROFILES, choices={"tag": ["a", "b"]})
    with pytest.raises(ParameterError, match="'n_seeds' has no value"):
        resolve_parameters(DECLARED, BASE, {**PROFILES, "smoke": {}})
    with pytest.raises(ParameterError, match="must declare 'device'"):
        resolve_parameters({"profile": str, "seed": int}, BASE, PROFILES)
    with pytest.raises(ParameterError, match="sets undeclared parameter"):
        resolve_parameters(DECLARED, BASE, {**PROFILES, "book": {"epochs": 3}})


def test_injected_names_come_from_the_latest_papermill_cell():
    history = ["import x", "profile: str = 'book'", "# Parameters\nprofile = 'smoke'\nseed = 3\n", "run = 1"]
    assert _injected_names(history) == {"profile", "seed"}
    assert _injected_names(["a = 1"]) == set()


def test_to_jsonable_handles_arrays_tensors_and_nan():
    assert to_jsonable({"a": np.float32(0.5), "b": torch.tensor([1, 2]), "c": float("nan")}) == \
        {"a": 0.5, "b": [1, 2], "c": None}
    with pytest.raises(TypeError, match="cannot record a value of type object"):
        to_jsonable(object())


def make_run():
    return ChapterRun(name="demo", params=Params({"profile": "smoke", "seed": 1}), device=torch.device("cpu"),
               seed=1, profile="smoke")


def make_book_run():
    return ChapterRun(name="demo", params=Params({"profile": "book", "seed": 1}), device=torch.device("cpu"),
               seed=1, profile="book")


def test_claims_keys_and_save(tmp_path, monkeypatch):
    from mmrepro.core.stats import Evidence

    monkeypatch.setenv("MMREPRO_RESULTS", str(tmp_path))
    run = make_book_run()
    run.record("acc", np.float64(0.75))
    with pytest.raises(ValueError, match="already recorded"):
        run.record("acc", 1.0)
    run.claim(id="c1", paper="P", where="Table 1", paper_value=0.8, criterion="better than vanilla",
              evidence=Evidence(0.05, (0.01, 0.09), 5, "Student t over paired seeds"), threshold=0, direction="above")
    run.claim(id="c2", paper="P", where="Fig 1", paper_value=None, criterion="n/a", evidence=None,
              threshold=0, direction="above", reason="the paper's dataset is not available")
    run.check(id="c3", paper="P", where="Lemma 1", paper_value="closed form", criterion="equal to 1e-9",
              passed=np.bool_(True), observed="max |diff| 3e-12")
    with pytest.raises(ValueError, match="claim id 'c1' was already recorded"):
        run.check(id="c1", paper="P", where="x", paper_value=1, criterion="c", passed=True, observed="")
    data = json.loads(run.save().read_text())
    assert data["values"] == {"acc": 0.75}
    assert [c["verdict"] for c in data["claims"]] == ["holds", "not comparable at this scale", "passes"]
    assert {"profile", "seed", "device", "mmrepro_version", "git_sha", "params"} <= set(data)
    runs = scorecard.load_results(tmp_path)
    table = scorecard.claims_table(runs)
    assert list(table["claim"]) == ["c1", "c2", "c3"]
    assert list(table["kind"]) == ["empirical", "empirical", "check"]
    counts = scorecard.verdict_counts(runs)
    assert counts.loc["all", "holds"] == 1 and counts.loc["all", "does not hold"] == 0
    assert counts.loc["all", "checks passed"] == 1 and counts.loc["demo", "not comparable at this scale"] == 1


def test_smoke_runs_mark_empirical_claims_not_comparable_but_keep_checks(tmp_path, monkeypatch):
    from mmrepro.core.stats import Evidence
    from mmrepro.publish.notebook import SMOKE_REASON

    run = make_run()
    c = run.claim(id="c1", paper="P", where="T1", paper_value=1, criterion="c",
                  evidence=Evidence(1.0, (0.5, 1.5), 3, "t"), threshold=0, direction="above")
    assert c["verdict"] == "not comparable at this scale" and c["reason"] == SMOKE_REASON
    assert c["estimate"] == 1.0 and c["interval"] == [0.5, 1.5]  # the evidence is still recorded
    assert run.check(id="c2", paper="P", where="L1", paper_value=1, criterion="c", passed=False,
                     observed="x")["verdict"] == "fails"


def test_a_verdict_cannot_be_passed_in():
    from mmrepro.core.stats import Evidence
    from mmrepro.publish.claims import ClaimError

    run = make_book_run()
    with pytest.raises(ClaimError, match=r"claim 'c1': unexpected field\(s\) \['holds'\]"):
        run.claim(id="c1", paper="P", where="T1", paper_value=1, criterion="c", evidence=Evidence(1.0, (0.5, 1.5), 3, "t"),
                  threshold=0, direction="above", holds=True)
    with pytest.raises(ClaimError, match=r"claim 'c2': unexpected field\(s\) \['verdict'\]"):
        run.claim(id="c2", paper="P", where="T1", paper_value=1, criterion="c", evidence=Evidence(1.0, (0.5, 1.5), 3, "t"),
                  threshold=0, direction="above", verdict="holds")
    with pytest.raises(ClaimError, match="claim 'c3': an empirical claim needs evidence"):
        run.claim(id="c3", paper="P", where="T1", paper_value=1, criterion="c", evidence=None, threshold=0,
                  direction="above")
    with pytest.raises(ClaimError, match="claim 'c4': field 'passed' must be a bool"):
        run.check(id="c4", paper="P", where="T1", paper_value=1, criterion="c", passed="yes", observed="")


def test_scorecard_rejects_foreign_files(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"notebook": "x"}))
    with pytest.raises(ValueError, match="x.json lacks"):
        scorecard.load_results(tmp_path)
    with pytest.raises(FileNotFoundError, match="execute the chapters first"):
        scorecard.load_results(tmp_path / "missing")


def test_glued_text_renders_exactly_as_formatted(monkeypatch):
    """{glue:text} literal-evaluates the glued plain text: "1.00" must not come back as "1.0"."""
    import IPython.core.formatters
    import myst_nb
    from myst_nb.core.variables import format_plain_text

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: glued.update({key: value}))
    run = make_run()
    run.glue("acc", 1.0, fmt="{:.2f}")
    run.glue("name", "it's ok")
    shown = {k: format_plain_text(IPython.core.formatters.format_display_data(v)[0]["text/plain"], "")
             for k, v in glued.items()}
    assert shown == {"acc": "1.00", "name": "it's ok"}
    assert run.values == {"acc": 1.0, "name": "it's ok"}


def test_glue_table_hides_a_default_index_only(monkeypatch, tmp_path):
    import myst_nb
    import pandas as pd

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: glued.update({key: value}))
    run = make_run()
    run.glue_table("plain", pd.DataFrame({"acc": [0.5, 0.75]}))
    run.glue_table("by_gamma", pd.DataFrame({"acc": [0.5]}, index=pd.Index([0.25], name="gamma")))
    plain = glued["plain"]._repr_html_() if hasattr(glued["plain"], "_repr_html_") else glued["plain"].data
    assert "<th>acc</th>" in plain and "<th>0</th>" not in plain and "0.75" in plain
    assert isinstance(glued["by_gamma"], pd.DataFrame)  # a meaningful index is kept as it is
    assert run.values["plain"] == [{"acc": 0.5}, {"acc": 0.75}]


def test_figures_are_written_atomically_and_older_ones_removed_on_save(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: None)
    monkeypatch.setenv("MMREPRO_RESULTS", str(tmp_path))
    monkeypatch.delenv("MMREPRO_RUN_OUTPUT", raising=False)
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "from_an_older_run.png").write_bytes(b"old")
    run = make_book_run()
    fig, _ = plt.subplots()
    path = run.glue_figure("curve", fig)
    assert path.parts[-2:] == ("demo", "curve.png") and path.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["from_an_older_run.png"]  # until save()
    run.save()
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["curve.png"]  # no temporary file either
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.json"]  # nor the staging folder
    assert json.loads((tmp_path / "demo.json").read_text())["values"]["curve"] == {"figure": "curve.png"}
    monkeypatch.setenv("MMREPRO_RUN_OUTPUT", str(tmp_path / "staged"))  # what mmrepro run / book set
    assert make_book_run().save() == tmp_path / "staged" / "demo.json"


def test_claims_table_filters_by_prefixes_and_glue_claims_shows_them_styled(monkeypatch):
    import myst_nb

    from mmrepro.core.stats import Evidence

    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: glued.update({key: value}))
    run = make_book_run()
    for cid in ("a-1", "b-1", "c-1"):
        run.claim(id=cid, paper="P", where="T", paper_value=1, criterion="c", evidence=Evidence(1.0, (0.5, 1.5), 3, "t"),
                  threshold=0, direction="above")
    assert list(run.claims_table("a-", "c-")["claim"]) == ["a-1", "c-1"]
    assert list(run.claims_table()["claim"]) == ["a-1", "b-1", "c-1"]
    run.glue_claims("claims", "a-", "c-", display=False)
    html = glued["claims"].to_html()
    assert "a-1" in html and "b-1" not in html and "background:#cdebcf" in html  # the outcomes are coloured


# ----------------------------------------------------------------------------- bounds and results kept apart

def test_integer_size_parameters_have_a_ceiling_from_the_profiles():
    """A size parameter the profiles set may be at most 10 times the largest value a profile gives it (the
    `paper` profile's, here 10): -p n_seeds 1000000000 is refused before anything runs, with the reason."""
    assert resolve(n_seeds=100)["n_seeds"] == 100
    with pytest.raises(ParameterError, match=r"n_seeds=1000000000 is too large: at most 100 \(10 x the paper "
                                             r"profile's 10\), a bound that keeps a run within memory and time"):
        resolve(n_seeds=10**9)
    with pytest.raises(ParameterError, match=r"n_seeds=1000000000 is too large"):
        resolve_parameters(DECLARED, {**BASE, "n_seeds": 10**9}, PROFILES, injected=set())
    # a parameter the profiles do not set is bounded by its declared default the same way
    declared = {**DECLARED, "k": int}
    base = {**BASE, "k": 3}
    assert resolve_parameters(declared, base, PROFILES)["k"] == 3
    with pytest.raises(ParameterError, match=r"k=31 is too large: at most 30 \(10 x its default 3\)"):
        resolve_parameters(declared, {**base, "k": 31}, PROFILES, injected={"k"}, defaults={"k": 3})
    from mmrepro.publish.notebook import start  # in a kernel: the default comes from the parameters cell

    namespace = {"__annotations__": {"profile": str, "seed": int, "device": str, "k": int}, "profile": "smoke",
                 "seed": 0, "device": "cpu", "k": 31,
                 "In": ["", 'profile: str = "book"\nseed: int = 0\ndevice: str = "cpu"\nk: int = 3\n',
                        "# Parameters\nprofile = 'smoke'\nk = 31\n"]}
    with pytest.raises(ParameterError, match=r"k=31 is too large: at most 30 \(10 x its default 3\)"):
        start("demo", namespace, {"smoke": {}, "book": {}, "paper": {}})
    # lists: no longer than 10 times the longest a profile or the default gives
    declared, profiles = {**DECLARED, "rates": list}, {p: {**v, "rates": [0.1, 0.5]} for p, v in PROFILES.items()}
    base = {**BASE, "rates": None}
    assert len(resolve_parameters(declared, {**base, "rates": [0.1] * 20}, profiles)["rates"]) == 20
    with pytest.raises(ParameterError, match=r"rates holds 21 items: at most 20 \(10 x the paper profile's 2\)"):
        resolve_parameters(declared, {**base, "rates": [0.1] * 21}, profiles, injected={"rates"})


def test_chapter_size_parameters_are_refused_before_a_kernel_starts(tmp_path, monkeypatch, capsys):
    """The domain bounds MFH needs (they failed deep inside torch / scikit-learn) and the generic ceiling, from
    `mmrepro run` and `mmrepro plan`, as one line each and before anything runs."""
    from pathlib import Path

    from mmrepro.publish.cli import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    for name, value, message in [
            ("n_seeds", "1000000000", "n_seeds=1000000000 is too large: at most 200 (10 x the book profile's 20)"),
            ("av_downsample", "1000", "av_downsample=1000 is invalid: it must be between 1 and 28"),
            ("real_components", "100000", "real_components=100000 is invalid: it must be between 1 and 196")]:
        assert main(["run", "mfh", "-p", name, value, "--build", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert message in err and "nothing was run" in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "executed").exists()
    assert main(["plan", "mfh", "-p", "n_seeds", "1000000000", "--count-only"]) == 2
    err = capsys.readouterr().err
    assert "n_seeds=1000000000 is too large" in err and len(err.strip().splitlines()) == 1


def test_malformed_results_files_are_one_line_errors(tmp_path):
    good = {"notebook": "x", "profile": "book", "seed": 0, "device": "cpu", "mmrepro_version": "0", "git_sha": None}
    for content, message in [("5", "x.json is not a results file: it holds a int, not an object"),
                             (json.dumps({**good, "claims": 5}), "x.json: 'claims' must be a list of claim records, "
                                                                 "got int"),
                             (json.dumps({**good, "claims": [3]}), "x.json: claim 1 is not a record (an object), got int")]:
        (tmp_path / "x.json").write_text(content)
        with pytest.raises(ValueError, match=re.escape(message)):
            scorecard.load_results(tmp_path)


def make_smoke_run():
    return ChapterRun(name="demo", params=Params({"profile": "smoke", "seed": 1}), device=torch.device("cpu"),
                      seed=1, profile="smoke")


def test_a_results_file_of_one_profile_never_replaces_another_profiles(tmp_path, monkeypatch):
    """Plain papermill (no staging folder set by mmrepro): a `smoke` run refuses, at start() and at save(),
    to replace a `book` run's results file."""
    from mmrepro.publish.notebook import ResultsConflict, start

    monkeypatch.setenv("MMREPRO_RESULTS", str(tmp_path))
    monkeypatch.delenv("MMREPRO_RUN_OUTPUT", raising=False)
    make_book_run().save()
    before = (tmp_path / "demo.json").read_bytes()
    with pytest.raises(ResultsConflict, match=r"demo.json holds a 'book'-profile run of demo; this 'smoke'-profile "
                                              r"run would replace it"):
        make_smoke_run().save()
    namespace = {"__annotations__": {"profile": str, "seed": int, "device": str}, "profile": "smoke", "seed": 0,
                 "device": "cpu", "In": ["# Parameters\nprofile = 'smoke'\n"]}
    with pytest.raises(ResultsConflict, match="MMREPRO_RESULTS="):
        start("demo", namespace, {"smoke": {}, "book": {}, "paper": {}})
    assert (tmp_path / "demo.json").read_bytes() == before
    make_book_run().save()  # the same profile replaces its own earlier run


FAILING_RUN = """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import myst_nb
import torch
from mmrepro.publish.notebook import ChapterRun, Params
myst_nb.glue = lambda key, value, display=True: None
run = ChapterRun(name="demo", params=Params({"profile": "book", "seed": 1}), device=torch.device("cpu"), seed=1,
                 profile="book")
for key in ("a", "new"):
    fig, ax = plt.subplots()
    ax.plot([1, 3, 2])
    run.glue_figure(key, fig)
raise RuntimeError("the chapter fails before run.save()")
"""


def test_a_failed_plain_papermill_run_changes_none_of_the_earlier_runs_files(tmp_path, monkeypatch):
    """Figures are written as a run goes: under plain papermill they wait beside the results folder until
    run.save(); a run that fails first leaves the earlier run's results file and figures as they were."""
    import subprocess
    import sys
    from pathlib import Path

    import matplotlib.pyplot as plt
    import myst_nb

    monkeypatch.setattr(myst_nb, "glue", lambda key, value, display=True: None)
    monkeypatch.setenv("MMREPRO_RESULTS", str(tmp_path))
    monkeypatch.delenv("MMREPRO_RUN_OUTPUT", raising=False)
    run = make_book_run()
    fig, _ = plt.subplots()
    run.glue_figure("a", fig)
    run.save()
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    env = {k: v for k, v in __import__("os").environ.items() if k != "MMREPRO_RUN_OUTPUT"}
    env.update(MMREPRO_RESULTS=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", FAILING_RUN], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "fails before run.save()" in done.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "demo.json"]  # no staging folder left
