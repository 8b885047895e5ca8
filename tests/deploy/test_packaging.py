"""What an installation gets: a built wheel serves with nothing else, and `make run`'s set-up
(`scripts/setup.sh run`) installs no test-only package.

Both install into fresh virtualenvs of their own with the machine's ordinary pip (its index and
wheel cache), so they are marked slow. Nothing from this checkout's `.venv` is reused: the
commands run from a scratch folder with absolute paths into the fresh venv.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "astronaut.jpg"
pytestmark = pytest.mark.slow


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(specs: list[str]) -> set[str]:
    return {normalized(re.match(r"[A-Za-z0-9_.-]+", spec).group(0)) for spec in specs}  # type: ignore[union-attr]


def only_for_tests() -> set[str]:
    """The `test` extras that serving does not need too (httpx is both)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    only = requirement_names(project["optional-dependencies"]["test"]) - requirement_names(
        project["dependencies"]
    )
    assert {"pytest", "playwright", "scikit-image"} <= only  # the parse found the extras
    return only


def installed(venv: Path) -> set[str]:
    freeze = subprocess.run(
        [str(venv / "bin" / "pip"), "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    names = {
        normalized(m.group(1)) for m in re.finditer(r"^([A-Za-z0-9_.-]+)(==| @ )", freeze, re.M)
    }
    assert "pillow" in names, freeze  # a runtime dependency: the listing was read
    return names


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's venv or settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("USERPHOTO_") and key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join(
        part for part in env["PATH"].split(os.pathsep) if not part.startswith(str(REPO))
    )
    return env | extra


def source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, nothing ignored): a wheel built
    from it holds what a clean clone would, and the build leaves nothing in the checkout."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = source_copy(work / "src")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        env=clean_env(),
    )
    (built,) = (work / "dist").glob("userphoto-*.whl")
    return built


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; stopped at its end."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(base: str, proc: subprocess.Popen, log: Path) -> None:
    """Until `GET /healthz` answers 200 (the workers listen a moment after "serving on")."""
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def run(venv: Path, *args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [str(venv / "bin" / "userphoto"), *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"userphoto {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_built_wheel_serves_in_a_fresh_venv_without_the_test_extras(
    wheel: Path, tmp_path: Path, serving: list[subprocess.Popen]
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
        env=clean_env(),
    )
    assert not installed(venv) & only_for_tests()

    # The installed package is the wheel's, not this checkout's.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import userphoto; print(userphoto.__file__)"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where

    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    run(venv, "--home", str(home), "init", cwd=work)
    demo = run(venv, "--home", str(home), "demo", cwd=work)
    member = re.search(r"member token \(adele\.vance@contoso\.example\): (\S+)", demo)
    assert member, demo
    # The face detector's models come with the package: the crop is a face, not a guess.
    uploaded = run(
        venv, "--home", str(home), "set", "adele.vance@contoso.example", str(SAMPLE), cwd=work
    )
    assert "(face " in uploaded, uploaded

    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        serving.append(
            subprocess.Popen(
                [
                    str(venv / "bin" / "userphoto"),
                    "--home",
                    str(home),
                    "serve",
                    "--port",
                    str(port),
                ],
                cwd=work,
                env=clean_env(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        )
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base, serving[0], log)
    assert f"serving on {base}/" in log.read_text()

    with httpx.Client(base_url=base, timeout=30) as client:
        health = client.get("/healthz")
        assert health.json() == {"status": "ok"}
        photo = client.get(
            "/v1/users/adele.vance@contoso.example/photo?size=96",
            headers={"Authorization": f"Bearer {member.group(1)}"},
        )
        assert photo.status_code == 200, photo.text
        assert photo.headers["content-type"] == "image/jpeg"
        assert photo.headers["x-photo-source"] == "hd"
        assert photo.content.startswith(b"\xff\xd8")
        # The page templates and static files are in the wheel too.
        signin = client.get("/signin")
        assert signin.status_code == 200 and "<form" in signin.text
        css = re.search(r'href="(/web/static/[^"]+\.css[^"]*)"', signin.text)
        assert css, signin.text
        assert client.get(css.group(1)).status_code == 200


def test_make_run_setup_installs_no_test_only_package(tmp_path: Path) -> None:
    venv = tmp_path / "run-venv"
    proc = subprocess.run(
        ["bash", "-x", str(REPO / "scripts" / "setup.sh"), "run"],
        env=clean_env(VENV=str(venv)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not installed(venv) & only_for_tests()
    # What it ran: the service's install only, no npm and none of the test servers' packages.
    trace = proc.stderr
    assert "pip install -q -e ." in trace
    assert ".[test]" not in trace
    for word in ("npm", "slapd", "samba", "chromium", "nginx"):
        assert word not in trace, word
    shown = subprocess.run(
        [str(venv / "bin" / "userphoto"), "--version"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0 and shown.stdout.startswith("userphoto, version ")


def test_make_run_serves_on_port_with_the_run_setup(tmp_path: Path) -> None:
    """`make run PORT=N`: the run set-up (never the test one), the demo, `serve` on port N."""
    dry = subprocess.run(
        ["make", "-n", "-C", str(REPO), "run"], capture_output=True, text=True, check=True
    ).stdout
    assert "scripts/setup.sh run" in dry and "scripts/setup.sh test" not in dry
    tested = subprocess.run(
        ["make", "-n", "-C", str(REPO), "test"], capture_output=True, text=True, check=True
    ).stdout
    assert "scripts/setup.sh test" in tested

    port = free_port()
    env = clean_env(USERPHOTO_HOME=str(tmp_path / "demo"))
    proc = subprocess.Popen(
        ["make", "-s", "-C", str(REPO), "run", f"PORT={port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "serving on" not in "".join(lines[-1:]):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        assert f"serving on http://127.0.0.1:{port}/" in text, text
        assert f"http://127.0.0.1:{port}/" in text.split("serving on")[0]  # the demo's URL
        served = tmp_path / "served.log"
        served.write_text(text)
        wait_healthy(f"http://127.0.0.1:{port}", proc, served)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
