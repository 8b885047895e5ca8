"""Directory sync benchmark against a real slapd: full load, 1% delta, and propagation.

Seeds N users with thumbnailPhoto offline (`slapadd`), then measures in this order:
1. full sync (initial load) in users/s, and a repeat full sync (nothing changed);
2. delta after 1% of the photos changed;
3. LDAP -> store and LDAP -> HTTP: with `userphoto sync --watch` (syncrepl: slapd loads
   syncprov) and `userphoto serve` running as the administrator would run them, change a
   thumbnailPhoto over LDAP and time until the store holds it, and until
   `GET /v1/users/{address}/photo` serves the new bytes (p50/p95 over 20 changes);
4. HTTP -> LDAP: upload an HD photo through the HTTP API and time until the new
   thumbnailPhoto is visible over LDAP (write-back), p50/p95 over 20 uploads;
5. the same as 3 on a real Samba AD DC (change notification + DirSync), provisioned here in
   its own network namespace (needs root; --no-samba skips it).

    .venv/bin/python -m bench.sync [--users 10000] [--changes 20] [--ad-people 200] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ldap3
from PIL import Image

from bench.common import free_port, parse, percentile
from tests.support.slapd import Slapd, ldif, photo, uid, user_dn
from userphoto.app import App
from userphoto.config import Settings
from userphoto.directory import status
from userphoto.directory import sync as sync_module
from userphoto.directory.client import DirectoryClient
from userphoto.directory.entry import Flavour
from userphoto.directory.fastread import paged_search
from userphoto.directory.sync import SyncEngine

BIN = Path(sys.executable).parent
WATCH_LOG: Path | None = None  # --watch-log


def wait_for(check: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if check():
            return time.perf_counter() - t0
        time.sleep(step)
    raise TimeoutError("the change did not arrive within 30 s")


def write_config(home: Path, server: Slapd) -> None:
    settings = server.directory_settings(writeback=True)
    settings.update(retries=3, backoff=1.0, timeout=10)  # production-like, not test-quick
    _write_settings(home, settings)


def _write_settings(home: Path, settings: dict[str, object]) -> None:
    lines = ["[directory]"] + [
        f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool) else f"{k} = {str(v).lower()}"
        for k, v in settings.items()
    ]
    (home / "userphoto.toml").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--ad-people", type=int, default=200, help="people on the Samba DC")
    parser.add_argument("--no-samba", action="store_true", help="skip the Samba AD DC part")
    parser.add_argument(
        "--load-only", action="store_true", help="only the initial load and its references"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="initial loads (each into a fresh store)"
    )
    parser.add_argument("--samba-only", action="store_true", help="only the Samba AD DC part")
    parser.add_argument(
        "--watch-log", type=Path, help="`sync --watch -v` writes its log here (diagnosis)"
    )
    # Quick: a small directory and no Samba AD DC (provisioning one alone takes minutes).
    args = parse(parser, {"users": 500, "changes": 3, "no_samba": True})
    global WATCH_LOG
    WATCH_LOG = args.watch_log
    n = args.users
    if args.samba_only:
        tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
        try:
            _samba(tmp, args.ad_people, args.changes)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    home = tmp / "home"
    home.mkdir()
    os.environ["USERPHOTO_HOME"] = str(home)

    server = Slapd(tmp / "slapd")
    t0 = time.perf_counter()
    server.seed(ldif(range(n)))
    print(f"seeded {n:,} users with photos via slapadd in {time.perf_counter() - t0:.2f}s")
    server.start()
    write_config(home, server)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # The initial load, `--rounds` times into a fresh store each (the machine's load
        # moves during a round, so one round's ratio says little on a shared machine); the
        # rest of the bench goes on with the first round's store.
        ratios = []
        for r in range(args.rounds):
            round_home = home if r == 0 else tmp / f"home-{r + 1}"
            round_home.mkdir(exist_ok=True)
            write_config(round_home, server)
            if args.rounds > 1:
                print(f"round {r + 1} of {args.rounds}:")
            ratios.append(_initial_load(round_home, server, n))
        if args.rounds > 1:
            print(
                f"initial load over {args.rounds} rounds: median {statistics.median(ratios):.2f}× "
                f"the bare ldap3 read's time (each: {', '.join(f'{x:.2f}×' for x in ratios)})"
            )
        if args.load_only:
            return
        app = App(Settings.load(home))
        assert app.directory is not None
        again = SyncEngine(app.store, app.directory).full()
        assert again.ok and again.unchanged == n
        print(
            f"full sync (nothing changed): {again.seconds:.2f}s, {n / again.seconds:,.0f} users/s"
        )

        changed = max(1, n // 100)
        conn = server.connection()
        time.sleep(1.1)  # let the cursor's second pass (modifyTimestamp has 1 s resolution)
        for i in range(changed):
            conn.modify(
                user_dn(i * 97 % n),
                {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [photo(i * 97 % n, 1)])]},
            )
        delta = SyncEngine(app.store, app.directory).delta()
        assert delta.ok and delta.photos_new == changed, delta.summary()
        print(f"delta with {changed} changed (1%): {delta.seconds:.3f}s, {delta.seen} entries read")
        app.close()

        # --- propagation under `sync --watch` and `serve`, as deployed -------------------
        env = {**os.environ, "USERPHOTO_HOME": str(home)}
        viewer = uid(n - 1) + "@example.org"
        uploaders = [(n // 2 + k * 11) % n for k in range(args.changes)]
        # Tokens first: a server reads its token list when it starts.
        token = _token(env, viewer)
        tokens = {i: _token(env, f"{uid(i)}@example.org") for i in uploaders}
        http, started = _serve_and_watch(env, token, Settings.load(home))
        procs.extend(started)
        watch = _status(home).get("watch", {})
        print(f"sync --watch on OpenLDAP: {watch.get('mode')} ({watch.get('why') or 'syncprov'})")

        changed_users = [(n // 10 + k * 13) % n for k in range(args.changes)]

        def modify(i: int, data: bytes) -> None:
            conn.modify(user_dn(i), {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [data])]})

        _propagation(
            "OpenLDAP",
            http,
            Settings.load(home),
            [(f"{uid(i)}@example.org", i) for i in changed_users],
            modify,
        )

        reverse: list[float] = []
        for k, i in enumerate(uploaders):
            address = f"{uid(i)}@example.org"
            own = tokens[i]
            body = io.BytesIO()
            Image.new("RGB", (648, 648), ((k * 40) % 256, 90, 160)).save(body, "JPEG")
            before = _ldap_photo(conn, user_dn(i))
            t0 = time.perf_counter()
            put = http.put(
                f"/v1/users/{address}/photo",
                content=body.getvalue(),
                headers={"Authorization": f"Bearer {own}", "Content-Type": "image/jpeg"},
            )
            assert put.status_code in (200, 201, 204), (put.status_code, put.text)
            wait_for(lambda i=i, old=before: _ldap_photo(conn, user_dn(i)) != old)
            reverse.append(time.perf_counter() - t0)
        print(
            f"HTTP upload -> LDAP thumbnailPhoto ({args.changes} uploads): "
            f"p50 {percentile(reverse, 0.5):.3f}s, p95 {percentile(reverse, 0.95):.3f}s, "
            f"max {max(reverse):.3f}s"
        )
    finally:
        _stop(procs)
        server.stop()
        if args.load_only:
            shutil.rmtree(tmp, ignore_errors=True)
    try:
        if not args.no_samba:
            _samba(tmp, args.ad_people, args.changes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _initial_load(home: Path, server: Slapd, n: int) -> float:
    """A full sync of the `n` users into the empty store at `home`, with the references of
    the same moment; prints the figures and returns the load's time over the bare ldap3
    read's."""
    app = App(Settings.load(home))
    assert app.directory is not None
    config = app.directory
    engine = SyncEngine(app.store, config)

    # References, same run: a bare paged read of the same entries, no processing, with
    # ldap3 (the reference: what the rest of the package uses) and with
    # python-ldap (libldap's C decoding: what the sync's reader process uses), just
    # before and just after the initial load (the machine's load moves meanwhile).
    def bare_read(kind: str) -> tuple[float, float]:
        reader = DirectoryClient(config)
        info = reader.refresh_info()
        reader.close()
        flavour = Flavour.of(config, info.is_ad)
        search = (flavour.user_filter, flavour.attributes(config))
        t0, c0 = time.perf_counter(), time.process_time()
        if kind == "ldap3":
            with DirectoryClient(config) as client:
                read = sum(len(p) for p in client.search(*search))
        else:
            read = sum(len(p) for p in paged_search(config, *search))
        assert read == n
        return time.perf_counter() - t0, time.process_time() - c0

    kinds = ("ldap3", "python-ldap")
    before = {k: bare_read(k) for k in kinds}

    # CPU seconds of every process involved, so the figure means something on a machine
    # that others share: wall-clock rate, and what the CPU cost allows on 2 idle cores.
    sync_module.photo_workers()  # the photo workers, started before the run
    assert server.proc is not None
    # Workers are recycled after a number of jobs (a second round gets there): one that
    # ends has all its CPU in its parent's (the forkserver's) children's time.
    forkserver = _parent(sync_module.worker_pids()[0])
    fixed = [os.getpid(), server.proc.pid]
    # The reader process is forked from this one: its CPU lands in this process's
    # children's time once it has exited and been joined.
    cpu_before = [_cpu(p) for p in fixed]
    workers_before = _workers_cpu(forkserver)
    children_before = _cpu(os.getpid(), children=True)
    load = os.getloadavg()[0]
    full = engine.full()
    used = [after - before for after, before in zip(map(_cpu, fixed), cpu_before, strict=True)]
    workers_cpu = _workers_cpu(forkserver) - workers_before
    reader_cpu = _cpu(os.getpid(), children=True) - children_before
    load = (load + os.getloadavg()[0]) / 2
    assert full.ok and full.added == n, full.summary()
    app.close()
    after = {k: bare_read(k) for k in kinds}
    bare = {k: (before[k][0] + after[k][0]) / 2 for k in kinds}
    bare_cpu = {k: (before[k][1] + after[k][1]) / 2 for k in kinds}
    for k in kinds:
        print(
            f"reference: bare paged {k} read of {n:,} entries: {before[k][0]:.2f}s before, "
            f"{after[k][0]:.2f}s after ({n / bare[k]:,.0f} entries/s; "
            f"{bare_cpu[k] / n * 1000:.3f} ms CPU per entry)"
        )
    main_cpu, slapd_cpu = used
    total = main_cpu + slapd_cpu + workers_cpu + reader_cpu
    ratio = full.seconds / bare["ldap3"]
    print(
        f"full sync (initial load): {full.seconds:.2f}s, {n / full.seconds:,.0f} users/s "
        f"wall (load average {load:.1f} on {os.cpu_count()} cores): "
        f"{ratio:.2f}× the bare ldap3 read's time, "
        f"{full.seconds / bare['python-ldap']:.2f}× the bare python-ldap read's"
    )
    # On 2 idle cores the pipeline takes at least its CPU over 2 cores, and at least its
    # busiest process; the bare read at least its own CPU.
    idle = max(total / 2, main_cpu, reader_cpu)
    print(
        f"  CPU: {total / n * 1000:.2f} ms/user in all (main {main_cpu:.2f}s = "
        f"{main_cpu / n * 1000:.2f} ms/user, reader {reader_cpu:.2f}s, photo workers "
        f"{workers_cpu:.2f}s = {workers_cpu / n * 1000:.2f} ms/user, slapd {slapd_cpu:.2f}s); "
        f"on 2 idle cores that is at least {idle:.2f}s, "
        f"{idle / max(bare_cpu['ldap3'], slapd_cpu):.2f}× the bare ldap3 read's CPU, "
        f"{idle / max(bare_cpu['python-ldap'], slapd_cpu):.2f}× the python-ldap read's"
    )
    return ratio


def _token(env: dict[str, str], address: str) -> str:
    return subprocess.run(
        [str(BIN / "userphoto"), "token", "create", address],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _status(home: Path) -> dict:
    app = App(Settings.load(home))
    try:
        return status.load(app.store)
    finally:
        app.close()


def _serve_and_watch(
    env: dict[str, str], token: str, settings: Settings
) -> tuple[httpx.Client, list[subprocess.Popen[bytes]]]:
    """`userphoto serve` and `userphoto sync --watch` as separate processes (started in the
    calling thread's network namespace), once both are ready."""
    port = free_port()
    watch = ["sync", "--watch", "-v"] if WATCH_LOG else ["sync", "--watch"]
    procs = [
        subprocess.Popen(
            [str(BIN / "userphoto"), *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=WATCH_LOG.open("ab") if WATCH_LOG and command is watch else subprocess.DEVNULL,
        )
        for command in (["serve", "--port", str(port)], watch)
    ]
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    wait_for(lambda: _up(http), timeout=30)

    def watching() -> bool:
        watch = _status(settings.home).get("watch") or {}
        return watch.get("state") == "running" and (
            watch.get("mode") == "polling" or bool(watch.get("refresh"))
        )

    wait_for(watching, timeout=120, step=0.1)
    time.sleep(1.0)  # AD: the change-notification search opens after the first cycle
    return http, procs


def _propagation(
    label: str,
    http: httpx.Client,
    settings: Settings,
    targets: list[tuple[str, int]],
    modify: Callable[[int, bytes], None],
) -> None:
    """Change each target's thumbnailPhoto over LDAP; time until the store holds it (what
    `sync --watch` does) and until HTTP serves it (plus the server's cache refresh)."""
    app = App(settings)
    to_store: list[float] = []
    to_http: list[float] = []
    answered: list[float] = []  # the modify request itself, until the directory answers
    try:
        for k, (address, i) in enumerate(targets):
            url = f"/v1/users/{address}/photo?size=96"
            before = http.get(url)
            assert before.headers.get("x-photo-source") == "directory", before.headers
            user = app.store.find_user(address)
            assert user is not None
            data = photo(i, 50 + k)
            digest = hashlib.sha256(data).hexdigest()

            def stored(user_id: str = user.id, digest: str = digest) -> bool:
                slot = app.store.get_directory_thumbnail(user_id)
                return slot is not None and slot.raw_hash == digest

            t0, at = time.perf_counter(), time.strftime("%H:%M:%S")
            modify(i, data)
            answered.append(time.perf_counter() - t0)
            wait_for(stored, step=0.002)
            to_store.append(time.perf_counter() - t0)
            if WATCH_LOG:
                print(f"  {at} {address}: modify {answered[-1]:.3f}s, store {to_store[-1]:.3f}s")
            wait_for(lambda url=url, old=before.content: http.get(url).content != old, step=0.005)
            to_http.append(time.perf_counter() - t0)
            # Changes arrive independently, not in lock-step with any polling.
            time.sleep(random.uniform(0.2, 0.5))
    finally:
        app.close()
    print(
        f"{label}: (timed from the modify request; the directory itself took p50 "
        f"{percentile(answered, 0.5):.3f}s, p95 {percentile(answered, 0.95):.3f}s to answer it)"
    )
    for name, values in (("LDAP -> store", to_store), ("LDAP -> HTTP", to_http)):
        print(
            f"{label}: {name} ({len(values)} changes): p50 {percentile(values, 0.5):.3f}s, "
            f"p95 {percentile(values, 0.95):.3f}s, max {max(values):.3f}s"
        )


def _samba(tmp: Path, people: int, changes: int) -> None:
    """The same propagation measure on a real Samba AD DC (in its own network namespace)."""
    from tests.support.samba import USERS, Samba, add_person, available, netns, provision

    reason = available()
    if reason:
        print(f"Samba AD DC: not measured ({reason})")
        return
    root = tmp / "samba"
    t0 = time.perf_counter()
    provision(root)
    server = Samba(root)
    try:
        server.start(timeout=120)
    except RuntimeError as exc:  # seen once on the shared machine: one more try
        print(f"Samba AD DC: first start failed ({exc}); retrying")
        server.stop()
        server.start(timeout=120)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with netns(server.ns):
            conn = server.connection()
            for i in range(people):
                add_person(conn, f"P{i:04d}", photo=photo(i))
            print(
                f"Samba AD DC: provisioned, {people} people with photos added in "
                f"{time.perf_counter() - t0:.1f}s"
            )
            home = tmp / "home-ad"
            home.mkdir()
            settings = server.directory_settings(retries=3, backoff=1.0, timeout=10)
            _write_settings(home, settings)
            env = {**os.environ, "USERPHOTO_HOME": str(home)}
            subprocess.run(
                [str(BIN / "userphoto"), "sync", "--full"], env=env, check=True, capture_output=True
            )
            token = _token(env, f"p{people - 1:04d}@up.example")
            http, procs = _serve_and_watch(env, token, Settings.load(home))
            watch = _status(home).get("watch", {})
            print(f"sync --watch on Samba: {watch.get('mode')} ({watch.get('why')})")

            def modify(i: int, data: bytes) -> None:
                conn.modify(
                    f"CN=P{i:04d},{USERS}", {"thumbnailPhoto": [(ldap3.MODIFY_REPLACE, [data])]}
                )

            picked = [(k * 7) % people for k in range(changes)]
            targets = [(f"p{i:04d}@up.example", i) for i in picked]
            _propagation("Samba AD DC", http, Settings.load(home), targets, modify)
    finally:
        _stop(procs)
        server.destroy()


def _cpu(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds of a process (threads included), or of its exited children,
    from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def _workers_cpu(forkserver: int) -> float:
    """CPU of the photo workers running now, and of every one that has ended."""
    return sum(_cpu(p) for p in sync_module.worker_pids()) + _cpu(forkserver, children=True)


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _up(http: httpx.Client) -> bool:
    try:
        http.get("/v1/users/nobody@example.org/photo")
        return True
    except httpx.HTTPError:
        return False


def _ldap_photo(conn: ldap3.Connection, dn: str) -> bytes | None:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["thumbnailPhoto"])
    values = conn.response[0]["raw_attributes"].get("thumbnailPhoto") if conn.response else None
    return values[0] if values else None


def _stop(procs: list[subprocess.Popen]) -> None:
    """Ask each process to stop; kill what has not within 10 s."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
