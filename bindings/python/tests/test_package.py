"""The package installs offline with pip and Debian's setuptools, and the
installed copy finds the library through LMRT_LIBRARY."""
import os
import shutil
import subprocess
import venv

import pytest

import lmrt

from conftest import PACKAGE_ROOT


def test_pip_install_offline_in_a_venv(tmp_path):
    env_dir = tmp_path / "venv"
    # No pip inside the venv: Debian's pip (python3-pip) comes in through the
    # system site-packages, and with it setuptools (python3-setuptools).
    try:
        venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    except Exception as e:  # pragma: no cover
        pytest.skip("cannot create a venv: %s" % e)
    py = str(env_dir / "bin" / "python")
    src = tmp_path / "src"
    shutil.copytree(PACKAGE_ROOT, src, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", ".pytest_cache"))
    e = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    e.pop("PYTHONPATH", None)
    p = subprocess.run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                        "--no-deps", str(src)], capture_output=True, text=True, env=e,
                       timeout=300)
    if p.returncode != 0 and "No module named pip" in p.stderr:
        pytest.skip("pip is not installed (python3-pip)")
    assert p.returncode == 0, p.stdout + p.stderr
    e["LMRT_LIBRARY"] = lmrt.library_path()
    code = ("import lmrt, os; assert 'site-packages' in lmrt.__file__, lmrt.__file__\n"
            "with lmrt.Model() as m:\n"
            "    s = m.session(region='US')\n"
            "    print(''.join(s.generate('Once upon a time', max_tokens=8, temperature=0)))\n")
    p = subprocess.run([py, "-c", code], capture_output=True, text=True, env=e, cwd=tmp_path,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(", there was a little"), p.stdout
