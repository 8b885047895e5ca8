"""Every command of the README runs as printed, against the demo organization.

Each ```sh block is taken from README.md and run by bash, in order, in a scratch folder that
holds what the commands name (`photos/`, `photos.zip`, `hr/`, `megan.jpg`, and links to the
project's `.venv` and `samples/`: the tour uploads the sample photo that comes with the
repository, as a reader's checkout has it). The data folder is the tour's
(`$PWD/.userphoto-demo`, the folder `make run` serves). The Directory block runs against a
real slapd, configured in that folder as the README's `[directory]` example shows. Two
commands keep running by design (`serve`, `sync --watch`): they are started in the background
and stopped at the end.

Not run here: the first block (`make run`, tested by test_first_run; `make test` is this suite).
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import BIN
from tests.support.directory import write_config
from tests.support.images import encode
from tests.support.net import free_port
from tests.support.slapd import PEOPLE, Slapd, ldif, need_slapd

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
# Commands that serve until stopped: started in the background, with their readiness line.
LONG_RUNNING = {"userphoto serve": "serving on", "userphoto sync --watch": None}


def sh_blocks() -> list[tuple[str, str]]:
    """(heading, body) of every ```sh block, in order."""
    blocks = []
    heading = ""
    # Fenced blocks first, so a `# comment` inside one is not taken for a heading.
    for match in re.finditer(r"^```(\w*)\n(.*?)^```|^(#+ [^\n]*)$", README, re.M | re.S):
        if match.group(3):
            heading = match.group(3)
        elif match.group(1) == "sh":
            blocks.append((heading, match.group(2)))
    return blocks


def commands(body: str) -> list[str]:
    """The command lines of a block: continuations joined, comments and blanks dropped."""
    body = body.replace("\\\n", " ")
    return [line for line in body.splitlines() if line.strip() and not line.startswith("#")]


def portrait(colour: tuple[int, int, int], side: int = 700) -> bytes:
    return encode(Image.new("RGB", (side, side), colour), "JPEG")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """The folder the README's commands run in, with the files they name."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    (cwd / ".venv").symlink_to(REPO / ".venv")
    (cwd / "samples").symlink_to(REPO / "samples")
    (cwd / "megan.jpg").write_bytes(portrait((20, 120, 190), 300))
    (cwd / "photos").mkdir()
    (cwd / "photos" / "alex.wilber@contoso.example.jpg").write_bytes(portrait((10, 200, 10)))
    with zipfile.ZipFile(cwd / "photos.zip", "w") as archive:
        archive.writestr("Brian.Johnson.jpg", portrait((90, 90, 200)))
    (cwd / "hr").mkdir()
    (cwd / "hr" / "E1042.jpg").write_bytes(portrait((50, 50, 50)))
    return cwd


def test_every_readme_command_runs_as_printed(scratch: Path, tmp_path: Path) -> None:
    need_slapd()  # the Directory block runs against a real slapd
    blocks = sh_blocks()
    assert blocks[0][1].startswith("make run"), "the first block is `make run` / `make test`"
    home = scratch / ".userphoto-demo"
    port = 8080 if port_free(8080) else free_port()  # the README's port, unless it is taken
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("USERPHOTO_") and key != "VIRTUAL_ENV"
    }
    env |= {"USERPHOTO_HOME": str(home), "PATH": f"{BIN}:{env['PATH']}"}
    background: list[subprocess.Popen] = []
    slapd: Slapd | None = None
    ran = 0
    printed: dict[str, str] = {}  # heading -> what its commands printed
    try:
        for heading, body in blocks[1:]:
            if heading.startswith("## Directory"):
                slapd = Slapd(tmp_path / "slapd")
                slapd.seed(ldif([]))
                slapd.start()
                add_megan(slapd)
                config = home / "userphoto.toml"
                kept = config.read_text()
                write_config(home, slapd.directory_settings())
                config.write_text(kept + config.read_text())
            script: list[str] = []
            for line in commands(body):
                if port != 8080:
                    line = line.replace("localhost:8080", f"localhost:{port}")
                    line = line.replace("userphoto serve", f"userphoto serve --port {port}")
                if any(line.startswith(cmd) for cmd in LONG_RUNNING):
                    printed[heading] = printed.get(heading, "") + run_script(
                        script, heading, scratch, env
                    )
                    script = []
                    command = line.split("#")[0].strip()
                    background.append(start(command, scratch, env, tmp_path))
                    continue
                script.append(f"echo '+ {line.replace(chr(39), '')}' >&2")
                if re.match(r"userphoto (diagnose|doctor)", line):
                    # They exit 1 when they report an error-level cause, as their --help says.
                    script += ["set +e", line, "rc=$?; set -e; [ $rc -le 1 ]"]
                else:
                    script.append(line)
                ran += 1
            printed[heading] = printed.get(heading, "") + run_script(script, heading, scratch, env)
    finally:
        for proc in background:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        if slapd is not None:
            slapd.stop()
    assert ran >= 30
    # The tour's sample photo is a real face: the preview is face-cropped, not a guess.
    tour = printed["## A short tour"]
    assert re.search(r"adele\.vance@contoso\.example: preview stored .* crop [\d,]+ \(face ", tour)
    # What the tour and the serving block leave behind is what they say.
    assert Image.open(io.BytesIO((scratch / "preview.jpg").read_bytes())).size == (96, 96)
    Image.open(io.BytesIO((scratch / "adele.jpg").read_bytes())).verify()  # curl got an image
    report = (scratch / "import.csv").read_text()
    assert re.search(r"E1042\.jpg.*megan\.bowen@contoso\.example", report), report
    assert (scratch / "backup" / "alex.wilber@contoso.example.jpg").exists()


def add_megan(slapd: Slapd) -> None:
    """megan.bowen@contoso.example in the directory (the README's Directory examples)."""
    conn = slapd.connection()
    conn.add(
        f"uid=megan,{PEOPLE}",
        attributes={
            "objectClass": ["inetOrgPerson", "userphotoADUser"],
            "uid": "megan",
            "cn": "Megan Bowen",
            "sn": "Bowen",
            "givenName": "Megan",
            "displayName": "Megan Bowen",
            "mail": "megan.bowen@contoso.example",
            "employeeID": "E1042",  # hr/E1042.jpg in the README's import example
        },
    )
    conn.unbind()


def run_script(script: list[str], heading: str, cwd: Path, env: dict[str, str]) -> str:
    """Run one block's commands; their standard output."""
    if not script:
        return ""
    proc = subprocess.run(
        ["bash", "-c", "\n".join(["set -e -o pipefail", *script])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{heading}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr, proc.stderr
    # Every address the README names is in the demo organization (or the test's directory).
    assert "no such user" not in proc.stdout and "No user" not in proc.stderr, proc.stdout
    return proc.stdout


def start(command: str, cwd: Path, env: dict[str, str], logs: Path) -> subprocess.Popen:
    """Start a command that runs until stopped; wait for its readiness line, if it has one."""
    log = logs / f"bg-{time.monotonic_ns()}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wanted = next(LONG_RUNNING[key] for key in LONG_RUNNING if command.startswith(key))
    deadline = time.monotonic() + (60 if wanted else 1.5)
    while time.monotonic() < deadline:
        if wanted and wanted in log.read_text():
            time.sleep(0.3)  # bound and printed; let the loop start
            return proc
        assert proc.poll() is None, f"{command} stopped: {log.read_text()}"
        time.sleep(0.05)
    assert wanted is None, f"{command} did not start: {log.read_text()}"
    return proc
