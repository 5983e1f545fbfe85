"""The README's first request works: `make run`'s demo serves, and the documented `curl`
returns a match from the demo bank."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import SHARED_DIR
from test_service_live import _free_port

ROOT = Path(__file__).resolve().parent.parent
LIGHTKEEPER = str(Path(sys.executable).parent / "lightkeeper")


def _readme_curl() -> str:
    """The first `curl` command in the README's code blocks (continuation lines joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^(curl .*?[^\\])$", text, re.M | re.S)
    assert match, "the README shows no curl command"
    return match.group(1).replace("\\\n", " ")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_gets_a_match_from_the_demo_bank(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "LK": LIGHTKEEPER,
        "VECTORS": str(SHARED_DIR / "pdq-vectors"),
        "PORT": str(port),
    }
    log = (tmp_path / "demo.log").open("wb")
    demo = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()
            time.sleep(0.2)
        command = (
            _readme_curl()
            .replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            .replace("../shared/", f"{SHARED_DIR.as_posix()}/")
        )
        out = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, check=True, timeout=60
        )
        answer = json.loads(out.stdout)
        assert answer["decision"] == "reject"
        assert answer["matches"][0]["bank"] == "demo"
        assert answer["matches"][0]["value"] is None  # a matching key never sees the list
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
        log.close()
