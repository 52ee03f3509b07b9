"""The README's library examples run as printed."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs(capsys):
    text = README.read_text()
    section = text.split("## The library in ten lines", 1)[1]
    scope: dict = {}
    for code in re.findall(r"```python\n(.*?)```", section, re.S):  # later examples reuse earlier names
        exec(compile(code, "README example", "exec"), scope)
    out = capsys.readouterr().out
    assert out.count("epoch ") >= 5 and "val/fusion/accuracy" in out and "fit_many: [" in out
