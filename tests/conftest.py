"""Shared fixtures. Caffe tests skip when pycaffe is missing, except under REQUIRE_CAFFE=1 (CI),
where they fail loudly instead."""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GLOG_minloglevel", "2")  # keep Caffe's INFO logs out of test output
sys.path.insert(0, str(Path(__file__).parent))  # the oracle and net builders next to the tests

# the wrapper scripts/bootstrap.sh writes (CAFFE_TOOL overrides: scripts/gpu/check.sh)
VENV_CAFFE = Path(os.environ.get("CAFFE_TOOL", Path(sys.prefix) / "bin" / "caffe"))


@pytest.fixture(scope="session", autouse=True)
def list_index_cache(tmp_path_factory):
    """The data layer's list indexes in a folder of this session (children inherit it), not
    in the user's cache."""
    if "MULTILABEL_INDEX_DIR" not in os.environ:
        os.environ["MULTILABEL_INDEX_DIR"] = str(tmp_path_factory.mktemp("list-index"))


@pytest.fixture(scope="session")
def caffe():
    """The real pycaffe, in CPU mode (GPU mode with CAFFE_TEST_MODE=GPU, on a GPU machine:
    scripts/gpu/check.sh runs the suite so)."""
    try:
        import caffe as pycaffe
    except ImportError as why:
        message = f"pycaffe is not importable ({why}); run `make test`, which builds it"
        if os.environ.get("REQUIRE_CAFFE") == "1":
            pytest.fail(f"REQUIRE_CAFFE=1: {message}", pytrace=False)
        pytest.skip(message)
    if os.environ.get("CAFFE_TEST_MODE", "CPU") == "GPU":
        pycaffe.set_mode_gpu()
    else:
        pycaffe.set_mode_cpu()
    return pycaffe


@pytest.fixture(scope="session")
def caffe_tool(caffe) -> Path:
    """The venv's `caffe` wrapper (the real tool, with our Python layers importable)."""
    if not VENV_CAFFE.exists():
        pytest.fail(f"{VENV_CAFFE} is missing; run `make env`", pytrace=False)
    return VENV_CAFFE


@pytest.fixture(scope="session")
def patched_caffe_tool(caffe_tool) -> Path:
    """The `caffe` tool with this project's patch that prints a Python layer's traceback and
    exits (docker/patches/0002-*). A packaged tool (Debian's, run by multilabel-caffe; CI's
    Debian 11 stage sets CAFFE_TOOL_PATCHED=0) aborts instead, after our layers' own message."""
    if os.environ.get("CAFFE_TOOL_PATCHED", "1") == "0":
        pytest.skip(
            "needs this project's patched caffe tool (traceback, clean exit): CAFFE_TOOL is a "
            "packaged caffe (CAFFE_TOOL_PATCHED=0)"
        )
    return caffe_tool


def _need_compiler() -> None:
    """Skip without g++ (the Docker image ships no compiler) unless REQUIRE_BUILD_SOURCE=1
    (CI's native run)."""
    if shutil.which("g++") is None:
        message = "g++ is not installed: the kernels cannot be compiled for the host"
        if os.environ.get("REQUIRE_BUILD_SOURCE") == "1":
            pytest.fail(f"REQUIRE_BUILD_SOURCE=1: {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def library(tmp_path_factory):
    """kernels.cu built for the host (see :func:`_need_compiler`)."""
    _need_compiler()
    from cuda_host import compile_kernels

    return compile_kernels(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(scope="session")
def checks(tmp_path_factory):
    """kernels.cu's device twins of the package's rules, callable from Python."""
    _need_compiler()
    from cuda_host import compile_checks

    return compile_checks(tmp_path_factory.mktemp("checks"))


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's own name: reproducible, whatever runs before it."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


@pytest.fixture(params=["serial", "parallel"])
def engine_path(request, monkeypatch) -> str:
    """The CPU engine's two drivers of its kernels, each test run on both: ``serial`` (one
    pass, what small inputs get) and ``parallel`` (rows or blocks split over numba's threads,
    normally from PARALLEL_ELEMENTS scores up), chosen here by moving that threshold."""
    from python_layers.loss import fused_positions, fused_rows
    from python_layers.loss.numba_parts import threads

    if request.param == "parallel" and threads() < 2:
        pytest.skip("numba has one thread here: the parallel driver would run as the serial one")
    threshold = 1 if request.param == "parallel" else 1 << 62
    for module in (fused_rows, fused_positions):
        monkeypatch.setattr(module, "PARALLEL_ELEMENTS", threshold)
    return request.param


@pytest.fixture
def make_net(caffe, tmp_path):
    """Build a caffe.Net from a prototxt string (TEST phase unless told otherwise)."""
    counter = iter(range(10**6))

    def build(prototxt: str, phase=None):
        path = tmp_path / f"net{next(counter)}.prototxt"
        path.write_text(prototxt)
        return caffe.Net(str(path), caffe.TEST if phase is None else phase)

    return build


try:  # hypothesis profiles: the default keeps CI within minutes; `nightly` digs deeper
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.register_profile(
        "nightly", max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck)
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a pinned dev dependency
    pass
