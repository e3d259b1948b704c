"""The configs are found through the package: in this checkout and in an installed wheel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from marginface.configs import config_dir

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_finds_the_checkouts_configs():
    assert config_dir().resolve() == (ROOT / "conf").resolve()
    assert (config_dir() / "train.yaml").is_file()


@pytest.mark.slow  # builds and unpacks a wheel
def test_an_installed_wheel_carries_the_configs(tmp_path):
    wheel = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps"]
    subprocess.run([*wheel, "-q", "-w", str(tmp_path), str(ROOT)], check=True, timeout=600)
    (built,) = tmp_path.glob("marginface-*.whl")
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*install, str(built)], check=True, timeout=600)
    probe = "from marginface.configs import config_dir; print(config_dir())"
    found = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(site)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(found) == site / "marginface" / "conf"
    expected = sorted(p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml"))
    assert sorted(p.relative_to(found) for p in Path(found).rglob("*.yaml")) == expected
