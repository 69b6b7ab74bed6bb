"""`nnx-build view`: an export's ONNX model served by Netron on localhost, stopped by Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("netron")
onnx = pytest.importorskip("onnx")


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
    )
    (tmp_path / "export" / "onnx").mkdir(parents=True)
    onnx.save(helper.make_model(graph), tmp_path / "export" / "onnx" / "main.onnx")
    return tmp_path / "export"


def test_view_serves_the_onnx_file_until_ctrl_c(export_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "nnx_build.cli", "view", str(export_dir), "--port", "0", "--no-browse"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            line = proc.stdout.readline()
            match = re.search(r"at (http://\S+/) \(Ctrl-C stops it\)", line)
            assert match, line
            url = match.group(1)
            with urllib.request.urlopen(url, timeout=10) as r:
                page = r.read().decode()
            assert '<meta name="file" content="/data/main.onnx">' in page
            with urllib.request.urlopen(url + "data/main.onnx", timeout=10) as r:
                assert r.read() == (export_dir / "onnx" / "main.onnx").read_bytes()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=10)
            assert proc.returncode == 0, err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_view_needs_an_onnx_export(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "nnx_build.cli", "view", str(tmp_path), "--no-browse"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "has no onnx/main.onnx: export it with --to onnx" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_view_port_in_use_is_one_line(export_dir: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        s.listen()
        port = s.getsockname()[1]
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "nnx_build.cli", "view", str(export_dir), "--port", str(port), "--no-browse"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"cannot serve on localhost:{port}" in proc.stderr and time.monotonic() - start < 60
