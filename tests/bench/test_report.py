"""benchmarks/README.md's results table is what benchmarks/report.py renders from the results files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("benchmarks_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_the_rendered_results(report) -> None:
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert readme.count(report.BEGIN) == 1 and readme.count(report.END) == 1
    assert report.readme_block(readme) == report.render(), (
        "benchmarks/README.md's table differs from the results files: run `python benchmarks/report.py --readme`"
    )


def test_every_results_file_is_rendered(report) -> None:
    assert {p.stem for p in RESULTS.glob("*.json")} == set(report.NAMES)
    d = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in report.NAMES}
    expected = (len(d["parity"]["models"]) + 2 + 1 + len(d["check_scale"]["results"])
                + len([s for s in ("build", "export_stablehlo", "export_savedmodel") if s in d["scale"]["stages"]])
                + 1 + 1 + len(d["artifacts"]["summary"]) + 1
                + sum(len(set(report.PEER_MEASURES) & set(m["ratios"])) for m in d["peers"]["models"].values())
                + len(d["export_time"]["models"]))
    assert len(report.rows()) == expected


def test_figures_come_from_the_files(report) -> None:
    # spot checks against the JSON, independent of report.py's formatting code paths
    dispatch = json.loads((RESULTS / "dispatch.json").read_text())
    efficiency = json.loads((RESULTS / "efficiency.json").read_text())
    rendered = report.render()
    assert f"{dispatch['ratios']['fast_path_over_raw_jit']:.3f} ({dispatch['latency_us']['fast_path']:.1f} vs" in rendered
    assert f"{efficiency['efficiency_built_over_bare']:.2f} ({efficiency['gflop_per_s']['built']:.1f} vs" in rendered
    peers = json.loads((RESULTS / "peers.json").read_text())["models"]["resnet50"]
    ort = peers["values"]["ort_b8"]
    # ResNet-50's onnxruntime row: the same network as Keras' (the spec in its v1 layout), then the zoo spec
    assert f"{peers['ratios']['ort_b8_same']:.2f} ({ort['same']:.3g} vs {ort['keras']:.3g} ms)" in rendered
    assert f"{peers['ratios']['ort_b8']:.2f} ({ort['ours']:.3g} ms)" in rendered
    rows = [line for line in rendered.splitlines() if line.startswith("| ") and not line.startswith("| benchmark")]
    dated = {line.rsplit("|", 2)[-2].strip() for line in rows}
    assert dated <= {"undated"} | {json.loads(p.read_text())["machine"].get("date", "")[:10] for p in RESULTS.glob("*.json")}
