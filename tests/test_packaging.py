"""The config tree ships inside the wheel, and the package finds it there."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import ganlab
from ganlab.trust.paths import config_dir

REPO = Path(__file__).resolve().parents[1]


def test_source_checkout_finds_the_top_level_configs():
    assert config_dir() in (REPO / "configs", Path(ganlab.__file__).parent / "configs")
    assert (config_dir() / "config.yaml").is_file()


@pytest.mark.slow
def test_built_wheel_carries_configs_and_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(REPO)], check=True, capture_output=True, timeout=240)
    wheel = next((tmp_path / "dist").glob("ganlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for yaml in (p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")):
        assert f"ganlab/configs/{yaml}" in names
    for module in (p.relative_to(REPO).as_posix() for p in (REPO / "ganlab").rglob("*.py")):
        assert module in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # A fresh interpreter importing ganlab from the unpacked wheel (not the checkout) finds its configs.
    code = "import ganlab.trust.paths as p; print(p.config_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}).stdout.strip()
    assert out == str(site / "ganlab" / "configs")
