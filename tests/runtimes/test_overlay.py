"""requirements.txt overlays on top of a runtime."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fedsage.errors import RuntimeBuildError
from fedsage.runtimes import Runtime, requirements_overlay

pytestmark = pytest.mark.slow


def test_overlay_installs_beside_the_runtime(
    rt_0231: Runtime, clean_runtime_env: Path, tmp_path: Path
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("tabulate==0.8.10\n")
    overlay = requirements_overlay(rt_0231, req)
    assert overlay.is_relative_to(clean_runtime_env / "home" / "overlays")
    code = "import tabulate, sklearn; print(tabulate.__version__, sklearn.__version__)"
    out = subprocess.run(
        [str(rt_0231.python), "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(overlay)},
    )
    assert out.stdout.split() == ["0.8.10", "0.23.2"], out.stderr
    bare = subprocess.run([str(rt_0231.python), "-c", "import tabulate"], capture_output=True)
    assert bare.returncode != 0  # never installed into the runtime itself
    assert requirements_overlay(rt_0231, req) == overlay  # cached
    req.write_text("tabulate==0.8.9\n")
    assert requirements_overlay(rt_0231, req) != overlay  # keyed by content
    assert not list(overlay.parent.glob(".build-*"))


def test_bad_requirement_is_a_clear_error(
    rt_0231: Runtime, clean_runtime_env: Path, tmp_path: Path
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("fedsage-no-such-package-zz==1.0\n")
    with pytest.raises(RuntimeBuildError) as info:
        requirements_overlay(rt_0231, req)
    message = str(info.value)
    assert str(req) in message
    assert "fedsage-no-such-package-zz" in message
    overlays = clean_runtime_env / "home" / "overlays"
    assert not [p for p in overlays.iterdir() if p.name != ".locks"]


def test_overlay_keeps_what_the_runtime_satisfies(
    rt_0231: Runtime, clean_runtime_env: Path, tmp_path: Path
) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("six\nretrying>=1.3\n")  # both already in the runtime
    overlay = requirements_overlay(rt_0231, req)
    assert not list(overlay.glob("*.dist-info"))
    req.write_text("six==1.16.0\n")  # an upgrade goes into the overlay only
    overlay = requirements_overlay(rt_0231, req)
    assert [p.name for p in overlay.glob("*.dist-info")] == ["six-1.16.0.dist-info"]
    assert rt_0231.packages["six"] == "1.15.0"
