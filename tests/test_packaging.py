"""The wheel carries the PWA, and the installed service serves it from there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("videostation-*.whl")
    return found


def test_the_wheel_ships_the_web_app_and_the_console_script(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    for path in (
        "index.html",
        "js/protocol.js",
        "css/app.css",
        "manifest.webmanifest",
        "sw.js",
        "icons/icon-192.png",
    ):
        assert f"appliance/web/{path}" in names, path
    assert "appliance/media/encoder.py" in names and "appliance/py.typed" in names
    assert "appliance/http/security.py" in names  # every subpackage is listed in pyproject
    assert "videostation = appliance.cli:main" in scripts
    assert not any("tests/" in n or n.startswith("web/") for n in names)


def test_an_installed_wheel_finds_its_web_root(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    code = "from appliance.static import web_root; print(web_root())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target)},
        check=True,
        cwd=tmp_path,
    )
    assert Path(out.stdout.strip()) == target / "appliance" / "web"
