"""`nnx-build show`: one offline HTML page with the graph, summary, variable tree and linked spec source."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nnx_build.cli import main
from nnx_build.graph import find_engine

ROOT = Path(__file__).resolve().parents[2]
GPT2 = ROOT / "specs/zoo/gpt2.yaml"

pytestmark = pytest.mark.skipif(find_engine() is None, reason="no Graphviz layout engine (pip install graphviz-pure)")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("show") / "gpt2.html"
    assert main(["show", str(GPT2), "--out", str(out)]) in (0, None)
    return out


def test_page_holds_graph_summary_tree_and_source(page: Path) -> None:
    text = page.read_text()
    source = GPT2.read_text().splitlines()
    # the spec's source, every line numbered and addressable
    ids = set(re.findall(r'<span class="line" id="L(\d+)">', text))
    assert ids == {str(i) for i in range(1, len(source) + 1)}
    # each step of the graph links to the line that declares it
    for step in ("wte", "pos", "wpe", "embed", "drop", "h", "ln_f", "logits"):
        line = next(i for i, t in enumerate(source, 1) if t.startswith(f"  - {step}:"))
        assert re.search(rf'<g id="a_step:{step}"><a xlink:href="#L{line}"', text), step
    # every link in the page lands on an anchor of the page
    for target in re.findall(r'href="#(L\d+)"', text):
        assert target[1:] in ids
    # the summary table: every step, and the published parameter count
    for step in ("wte", "wpe", "h", "ln_f", "logits"):
        assert re.search(rf'<td><a href="#L\d+">{step}</a></td>', text)
    assert "124,439,808 parameters" in text
    # the variable tree is treescope's
    assert "treescope-container" in text
    assert "<svg" in text


def test_page_reads_nothing_from_outside(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r'\b(?:src|href)\s*=\s*"(?:https?:)?//', text)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
    assert "@import" not in text
    assert "<link" not in text


def test_show_refuses_other_suffixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(GPT2), "--out", str(tmp_path / "gpt2.svg")]) == 2
    assert "--out must end in .html" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium) for the headless browser test")
def test_page_in_a_headless_browser(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--window-size=1400,1000", "--virtual-time-budget=3000",
    ]
    proc = subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert "<svg" in dom and "treescope-container" in dom
