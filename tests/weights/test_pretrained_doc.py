"""docs/pretrained.md's sentence-embedding example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .test_minilm import model_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sentence_embedding_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    model_dir()  # skips when the checkpoint package is not installed
    text = (ROOT / "docs" / "pretrained.md").read_text(encoding="utf-8")
    section = text.split("\n## Sentence embeddings\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(ROOT)
    scope: dict[str, object] = {"__name__": "doc"}
    exec(compile(code, "docs/pretrained.md", "exec"), scope)  # noqa: S102 - the example's own assert checks the similarity
    assert scope["similarity"].shape == (3, 3)
    assert capsys.readouterr().out.strip()
