import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
# calibrations made by the tests (notebooks at smoke use the default cache) go to a folder of this test session, not
# into the user's ~/.cache/anyskill; papermill's kernels inherit it
os.environ.setdefault("ANYSKILL_CACHE", tempfile.mkdtemp(prefix="anyskill-test-cache-"))

REPO = Path(__file__).resolve().parent.parent
# The original poselib motion sources (BSD-3, licence and acknowledgement beside them) ship in tests/data/motions for
# the conversion tests; ANYSKILL_SHARED_DATA points elsewhere (a folder holding motions/). The bundled .npz do not
# need them.
SHARED_DATA = Path(os.environ.get("ANYSKILL_SHARED_DATA", REPO / "tests" / "data"))


@pytest.fixture(scope="session")
def model():
    from anyskill.humanoid.model import load_humanoid

    return load_humanoid()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "motions").is_dir():
        pytest.skip(f"original motion sources not found at {SHARED_DATA} (set ANYSKILL_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def motion_lib():
    """The bundled motion library (a module may override it with a smaller one)."""
    from anyskill.data import default_library

    return default_library()


@pytest.fixture(scope="module")
def llc_path(tmp_path_factory):
    """A small low-level controller whose latents move the arms (tests/hlc_fixtures.py), saved once per module."""
    from hlc_fixtures import build_arm_llc

    return build_arm_llc(tmp_path_factory.mktemp("llc") / "arm_llc.pth")
