"""The README's "Surgery → export" example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"the README section '{title}' should hold one python block"
    return blocks[0]


@pytest.mark.slow
def test_surgery_to_export_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code = _readme_block("Surgery → export")
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    assert capsys.readouterr().out.strip().splitlines()[-1] == "passed"
    assert (tmp_path / "build/surgery/weights.npz").is_file()
    assert (tmp_path / "build/surgery/export/manifest.json").is_file()


def test_surgery_example_up_to_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything before the export line works in this branch: surgery, a train step, save_weights."""
    import numpy as np

    import nnx_build

    code = _readme_block("Surgery → export")
    head, sep, _ = code.partition("result = nnx_build.export(")
    assert sep, "the example exports with nnx_build.export(model, ...)"
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "readme"}
    exec(compile(head, "README.md", "exec"), scope)  # noqa: S102
    model = scope["model"]
    saved = dict(np.load(tmp_path / "build/surgery/weights.npz"))
    # the LoRA adapter trained, the base kernel did not
    assert not np.allclose(saved["linear_out/lora_b"], 0)
    base = nnx_build.build("specs/seed/model.yaml", seed=0)
    np.testing.assert_array_equal(saved["linear_out/base_module/kernel"], np.asarray(base.linear_out.kernel[...]))
    assert type(model.linear_out).__name__ == "LoRA"
