"""granian's own knobs, on a do-nothing RSGI app and on `PhotoServer`, in the same run.

Every configuration is a granian process pinned to core 0 (nginx too, as the reference);
`wrk -t1 -c64` runs on core 1, and the servers are measured in alternation, round after
round, so load from anything else on the machine hits each alike. The do-nothing app answers
the same bytes with the same headers as a cached photo: its rate is granian's ceiling for
this answer on one core, whatever our Python does.

    .venv/bin/python -m bench.serve_knobs [--duration 5] [--rounds 3] [--case 200|304] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench import common

# (name, granian flags): the first is what `userphoto serve` ran before this bench.
KNOBS: list[tuple[str, list[str]]] = [
    ("st, asyncio tasks, uvloop, http auto", []),
    ("http 1 only", ["--http", "1"]),
    ("task-impl rust", ["--task-impl", "rust"]),
    ("loop rloop", ["--loop", "rloop"]),
    ("runtime mt", ["--runtime-mode", "mt"]),
    ("runtime mt, 2 threads", ["--runtime-mode", "mt", "--runtime-threads", "2"]),
    ("http1 pipeline flush", ["--http1-pipeline-flush"]),
    ("blocking threads 1", ["--blocking-threads", "1"]),
    ("backpressure 64", ["--backpressure", "64"]),
    (
        "http 1, rust tasks, pipeline flush",
        ["--http", "1", "--task-impl", "rust", "--http1-pipeline-flush"],
    ),
]
BASE = ["--interface", "rsgi", "--runtime-mode", "st", "--loop", "uvloop", "--no-ws"]
BASE += ["--log-level", "warning", "--host", "127.0.0.1"]


def start(log: Path, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A pinned server keeping its stderr (to say why one failed)."""
    with log.open("wb") as err:
        return common.start_pinned(cmd, env, stderr=err)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--case", choices=["200", "304"], default="200")
    parser.add_argument("--only", action="append", help="knob names to run (default: all)")
    quick = {"duration": 1, "rounds": 1, "only": [KNOBS[0][0], KNOBS[1][0]]}
    args = common.parse(parser, quick)
    if not (shutil.which("nginx") and shutil.which("wrk")):
        raise SystemExit("needs nginx-light and wrk (apt-get install nginx-light wrk)")
    knobs = [k for k in KNOBS if not args.only or k[0] in args.only]
    try:
        import rloop  # noqa: F401
    except ImportError:
        print("rloop is not installed: its rows are skipped")
        knobs = [k for k in knobs if "rloop" not in k[1]]

    tmp = Path(tempfile.mkdtemp(prefix="userphoto-knobs-"))
    tmp.chmod(0o755)
    home = tmp / "home"
    token, data = common.prepare_serving(home, 240, cold_users=0)
    (tmp / "www").mkdir()
    (tmp / "www" / "photo.jpg").write_bytes(data)
    (tmp / "body").write_bytes(data)
    env = {
        **os.environ,
        "USERPHOTO_HOME": str(home),
        "USERPHOTO_SERVER_ACCESS_LOG": "off",
        common.NOOP_BODY: str(tmp / "body"),
    }
    auth = {"Authorization": f"Bearer {token}"}
    photo = "/v1/users/" + common.ADDRESS + "/photo?size=240"
    granian = str(common.BIN / "granian")
    procs = []
    targets: dict[str, tuple[str, dict[str, str]]] = {}
    rounds: list[dict[str, tuple[float, float]]] = []
    try:
        port = common.free_port()
        (tmp / "nginx.conf").write_text(common.NGINX_CONF.format(tmp=tmp, port=port))
        procs.append(common.start_pinned(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]))
        targets["nginx static file"] = (f"http://127.0.0.1:{port}/photo.jpg", {})
        for name, flags in knobs:
            for app, target, path, headers in (
                ("do-nothing", common.NOOP_TARGET, "/", {}),
                ("PhotoServer", "userphoto.api.run:create_app", photo, auth),
            ):
                port = common.free_port()
                cmd = [granian, *BASE, "--port", str(port), "--factory", *flags]
                if app == "do-nothing":
                    cmd += ["--working-dir", str(common.ROOT)]
                procs.append(start(tmp / f"server-{len(procs)}.log", [*cmd, target], env))
                targets[f"{app} | {name}"] = (f"http://127.0.0.1:{port}{path}", headers)
        pgids = dict(zip(targets, (p.pid for p in procs), strict=True))
        etags = {}
        for (name, (url, h)), proc in zip(targets.items(), procs, strict=True):
            try:
                common.wait_http(url, h, timeout=90)  # twenty servers start at once
            except OSError:
                log = tmp / f"server-{procs.index(proc)}.log"
                raise SystemExit(f"{name} did not start:\n{log.read_text()[-3000:]}") from None
            if name.startswith("do-nothing"):
                common.wait_http(url, h)
                common.wrk(url, h, 1)
            else:
                etags[name] = common.check_answers(name, url, h)
        ref = "nginx static file"
        if args.case == "304":
            _status, got, _b = common.wait_http(targets[ref][0], {})
            etags[ref] = got.get("ETag") or got.get("etag")
        for _ in range(args.rounds):
            result = {}
            for name, (url, h) in targets.items():
                extra = {}
                if args.case == "304":
                    extra = {"If-None-Match": etags.get(name, '"0123456789abcdef"')}
                before = common.group_cpu(pgids[name])
                rate, count = common.wrk(url, {**h, **extra}, args.duration)
                result[name] = (rate, (common.group_cpu(pgids[name]) - before) / count * 1e6)
            rounds.append(result)
            print(f"round done, load average {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for proc in procs:
            common.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"case {args.case}; wrk -t1 -c64 -d{args.duration}s x {args.rounds} alternating "
        f"rounds; servers on core 0, wrk on core 1; load average {os.getloadavg()[0]:.1f}"
    )
    print("| app | granian knobs | req/s (median) | × nginx (median) | CPU µs/req (median) |")
    print("|---|---|---|---|---|")
    for name in targets:
        rate = statistics.median(r[name][0] for r in rounds)
        ratio = statistics.median(r[name][0] / r[ref][0] for r in rounds)
        cpu = statistics.median(r[name][1] for r in rounds)
        app, _, knob = name.partition(" | ")
        print(f"| {app} | {knob or '-'} | {rate:,.0f} | {ratio:.2f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
