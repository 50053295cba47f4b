"""docker/build_caffe.sh never deletes what it did not create, an interrupted build is never
reused, and two builds of one prefix at once build once. The script runs for real on the pinned
source (kept by the first build in the cache); a stand-in `cmake` on PATH stops it at the
configure step (or stands in for the whole build), so no test compiles anything."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from paths import REPO

SCRIPT = REPO / "docker" / "build_caffe.sh"
TARBALL = "caffe_1.0.0+git20180821.99bd997.orig.tar.gz"


@pytest.fixture(scope="session")
def pinned_tarball() -> Path:
    """The verified source, as build_caffe.sh keeps it (fetched now if no build kept it).

    Skips where it cannot be had (no Debian mirror reachable, e.g. inside the Docker image,
    which ships a finished Caffe and no build tools), unless REQUIRE_BUILD_SOURCE=1 (CI's
    native run)."""
    env = {k: v for k, v in os.environ.items() if k != "CAFFE_PREFIX"}
    facts = subprocess.run(  # the build's own check of this Python (headers, libpython)
        ["bash", str(SCRIPT), "--print-prefix"],
        env=dict(env, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if shutil.which("patch") is None or facts.returncode != 0:
        message = f"this environment does not build Caffe (no patch, or: {facts.stderr[-300:]})"
        if os.environ.get("REQUIRE_BUILD_SOURCE") == "1":
            pytest.fail(f"REQUIRE_BUILD_SOURCE=1: {message}", pytrace=False)
        pytest.skip(message)
    done = subprocess.run(
        ["bash", str(SCRIPT), "--fetch-source"],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=300,
    )
    path = Path(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    if path is None or not path.name == TARBALL or not path.exists():
        message = f"the pinned Caffe source could not be fetched: {done.stderr[-500:]}"
        if os.environ.get("REQUIRE_BUILD_SOURCE") == "1":
            pytest.fail(f"REQUIRE_BUILD_SOURCE=1: {message}", pytrace=False)
        pytest.skip(message)
    return path


def fake_cmake(tmp_path: Path, body: str) -> dict[str, str]:
    """An environment whose `cmake` is a shell script with ``body``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cmake = bin_dir / "cmake"
    cmake.write_text("#!/bin/sh\n" + body + "\n")
    cmake.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PYTHON=sys.executable)


def build(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=300,
    )


def staging_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if ".staging." in p.name)


def test_a_non_empty_prefix_is_refused_and_kept(tmp_path, pinned_tarball):
    """The way the defect was found: a directory with a file in it must survive."""
    prefix = tmp_path / "mine"
    prefix.mkdir()
    (prefix / "keep.txt").write_text("precious")
    env = fake_cmake(tmp_path, 'echo "cmake must not be reached" >&2; exit 1')
    done = build(env, CAFFE_PREFIX=str(prefix), CAFFE_SOURCE_TARBALL=str(pinned_tarball))
    assert done.returncode != 0
    assert f"CAFFE_PREFIX={prefix} is not empty" in done.stderr, done.stderr
    assert "never deletes a directory it did not create" in done.stderr
    assert "cmake must not be reached" not in done.stderr
    assert (prefix / "keep.txt").read_text() == "precious"
    assert staging_dirs(tmp_path) == []


def test_a_prefix_that_is_a_file_is_refused(tmp_path, pinned_tarball):
    prefix = tmp_path / "a_file"
    prefix.write_text("precious")
    done = build(fake_cmake(tmp_path, "exit 1"), CAFFE_PREFIX=str(prefix))
    assert done.returncode != 0
    assert f"CAFFE_PREFIX={prefix} exists and is not a directory" in done.stderr
    assert prefix.read_text() == "precious"


def _start_and_stop_at_configure(tmp_path: Path, prefix: Path, tarball: Path, sig: int):
    """Start a build whose configure step blocks, then send ``sig`` to its process group."""
    reached = tmp_path / "configure-reached"
    env = fake_cmake(tmp_path, f'touch "{reached}"; exec sleep 300')
    process = subprocess.Popen(
        ["bash", str(SCRIPT)],
        env={**env, "CAFFE_PREFIX": str(prefix), "CAFFE_SOURCE_TARBALL": str(tarball)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell's background job ignores SIGINT, and children keep that: ctrl-c would not
        # stop the build when the suite runs in the background (`make test &`, nohup)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not reached.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the build never reached configure"
        time.sleep(0.1)
    os.killpg(process.pid, sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    return stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_interrupted_build_leaves_nothing_a_later_run_would_reuse(tmp_path, pinned_tarball, sig):
    prefix = tmp_path / "caffe"
    _start_and_stop_at_configure(tmp_path, prefix, pinned_tarball, sig)
    assert not prefix.exists()  # the build was never at the prefix
    left = staging_dirs(tmp_path)
    if sig == signal.SIGINT:
        assert left == []  # the script cleaned up after itself
    else:
        assert len(left) == 1 and not (left[0] / ".build-complete").exists()
    # A later run does not reuse anything, and removes a killed run's staging directory.
    again = build(fake_cmake(tmp_path, "exit 1"), CAFFE_PREFIX=str(prefix))
    assert "reusing cached Caffe" not in again.stderr
    assert again.returncode != 0 and "cmake configure failed" in again.stderr, again.stderr
    if sig == signal.SIGKILL:
        assert f"removing an interrupted build's staging directory: {left[0]}" in again.stderr
    assert not prefix.exists()
    assert staging_dirs(tmp_path) == []


def test_an_empty_prefix_directory_gets_as_far_as_configure(tmp_path, pinned_tarball):
    """An empty directory is a valid prefix (the user made it for us); it is left as it was."""
    prefix = tmp_path / "empty"
    prefix.mkdir()
    done = build(
        fake_cmake(tmp_path, "exit 1"),
        CAFFE_PREFIX=str(prefix),
        CAFFE_SOURCE_TARBALL=str(pinned_tarball),
    )
    assert "cmake configure failed" in done.stderr, done.stderr
    assert prefix.is_dir() and list(prefix.iterdir()) == []
    assert staging_dirs(tmp_path) == []


# configure records itself and waits (so that a second build starts meanwhile); install writes
# what the script's own checks and smoke test look for: a whole build, nothing compiled.
STUB_BUILD = """
case "$1" in
  -S) for arg in "$@"; do case "$arg" in -DCMAKE_INSTALL_PREFIX=*) prefix="${arg#*=}";; esac; done
      mkdir -p "$4" && echo "$prefix" >"$4/prefix" && echo configured >>"%(count)s" && sleep 3 ;;
  --install) root="$DESTDIR$(cat "$2/prefix")"
      mkdir -p "$root/bin" "$root/python/caffe" && : >"$root/python/caffe/_caffe.so"
      printf '#!/bin/sh\\n' >"$root/bin/caffe" && chmod +x "$root/bin/caffe"
      echo "def layer_type_list(): return ['Python']" >"$root/python/caffe/__init__.py" ;;
esac
"""


def test_two_builds_into_an_empty_cache_at_once_build_once(tmp_path, pinned_tarball):
    """The second waits on the first's lock, then reuses its finished build."""
    count, prefix = tmp_path / "configured", tmp_path / "cache" / "caffe"
    env = fake_cmake(tmp_path, STUB_BUILD % {"count": count})
    env.pop("CAFFE_GPU", None)  # the stub installs a CPU pycaffe (no get_mode): CI's CUDA stage
    env.update(CAFFE_PREFIX=str(prefix), CAFFE_SOURCE_TARBALL=str(pinned_tarball),
               XDG_CACHE_HOME=str(tmp_path / "cache"))  # fmt: skip
    run = dict(env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = subprocess.Popen(["bash", str(SCRIPT)], **run)
    deadline = time.monotonic() + 120
    while not count.exists():  # the first is building when the second starts
        assert first.poll() is None, first.communicate()[1]
        assert time.monotonic() < deadline, "the first build never reached configure"
        time.sleep(0.05)
    second = subprocess.Popen(["bash", str(SCRIPT)], **run)
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs[1][1]
    assert [out.splitlines()[-1] for out, _ in outputs] == [str(prefix)] * 2
    assert count.read_text() == "configured\n"  # one build
    assert "another build of" in outputs[1][1] and "waiting for it" in outputs[1][1]
    assert f"reusing cached Caffe at {prefix}" in outputs[1][1]
    assert (prefix / ".build-complete").exists() and staging_dirs(prefix.parent) == []
