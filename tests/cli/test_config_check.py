"""`userphoto config check` checks what the settings say (values, pairs, files and their
permissions) and, with --connect, reaches the store, the OpenID provider and the directory;
every command refuses the same invalid values with the same words; store failures are one
line with the cause and the fix; no output ever shows a secret. All through the real CLI."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.support.net import free_port
from tests.support.postgres import SERVER
from tests.support.slapd import Slapd
from userphoto.redaction import redact

SECRET = "S3cr3t-Pw"


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / "userphoto.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def output(proc: object) -> str:
    return proc.stdout.decode() + proc.stderr.decode()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[store]\nurl = "mysql://u:pw@db/x"\n',
         "store.url in {file} must be sqlite:///PATH (a SQLite file) or "
         "postgresql://USER@HOST/DB, not 'mysql://u:********@db/x'"),
        ('[store]\nurl = "/srv/photos.db"\n',
         'store.url in {file} must be a URL: sqlite:///PATH (a SQLite file) or '
         'postgresql://USER@HOST/DB; for this file write "sqlite:////srv/photos.db"'),
        ('[store]\nread_url = "sqlite:///x.db"\n',
         "store.read_url in {file} must be a postgresql://USER@HOST/DB URL"),
        ('[server]\nmetrics_allow = ["10.0.0.0/33"]\n',
         "server.metrics_allow in {file} must list address ranges such as 10.0.0.0/8 or "
         "::1/128; '10.0.0.0/33' is not one"),
        ("[server]\nport = 70000\n", "server.port in {file} must be 0 to 65535, not 70000"),
        ('[server]\naccess_log = "xml"\n',
         "server.access_log in {file} must be one of json, logfmt, off, not 'xml'"),
        ('[server]\ntls_cert = "cert.pem"\n',
         "server.tls_cert in {file} is set but server.tls_key (USERPHOTO_SERVER_TLS_KEY) is not"),
        ('[oidc]\nissuer = "https://id.example"\n',
         "oidc.issuer in {file} is set but oidc.client_id (USERPHOTO_OIDC_CLIENT_ID) is not"),
        ('[oidc]\nissuer = "https://id.example"\nclient_id = "photos"\n',
         "oidc.issuer in {file} is set but oidc.client_secret (USERPHOTO_OIDC_CLIENT_SECRET) "
         "or oidc.client_secret_file (USERPHOTO_OIDC_CLIENT_SECRET_FILE) is not; set one too"),
        ('[oidc]\nissuer = "id.example"\nclient_id = "c"\nclient_secret = "s"\n',
         "oidc.issuer in {file} must be an https:// (or http://) URL, not 'id.example'"),
    ],
)  # fmt: skip
def test_invalid_values_are_refused_by_check_and_every_command_alike(
    run_cli: RunCli, home: Path, toml: str, message: str
) -> None:
    run_cli("init")
    path = write_config(home, toml)
    expected = "error: " + message.format(file=path)
    for args in (("config", "check"), ("user", "list")):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 1, output(proc)
        assert expected in proc.stderr.decode(), proc.stderr
        assert len(proc.stderr.decode().strip().splitlines()) == 1, proc.stderr


def test_values_nothing_foresaw_are_reported_never_a_crash(run_cli: RunCli, home: Path) -> None:
    run_cli("init")
    cases = [
        ('[directory]\nuri = "ldap://dc"\nbase_dn = "dc=x"\n'
         'account_state = { attribute = "a", disabled_bits = "many" }\n',
         "directory.account_state: disabled_bits is an integer"),
        ('[directory]\nuri = "ldap://dc"\nbase_dn = "dc=x"\nuser_filter = ["a"]\n',
         "directory.user_filter in {file} must be a string, not ['a']"),
        ('[store]\nurl = "postgresql://u@db:99999/x"\n',
         "has port '99999' in 'postgresql://u@db:99999/x'; a port is 1 to 65535"),
        ('[store]\nurl = "postgresql://u@[::1/x"\n', None),  # odd, but libpq's to judge
        ('[store]\nurl = "sqlite:///"\n', "store.url in {file} needs a file path"),
        ('[directory]\nuri = "ldap://dc"\nbase_dn = "dc=x"\n'
         "account_state = { attribute = 1979-05-27T07:32:00Z }\n",
         "directory.account_state must be a table with `attribute`"),
        ("[limits]\njob_cpu_seconds = -1\n", "job_cpu_seconds in {file} must be more than 0"),
    ]  # fmt: skip
    for toml, message in cases:
        path = write_config(home, toml)
        proc = run_cli("config", "check", check=False)
        text = output(proc)
        assert "unexpected" not in text and "Traceback" not in text, text
        if message is None:
            assert proc.returncode == 0, text
        else:
            assert proc.returncode == 1 and message.format(file=path) in text, text


def test_secrets_are_never_printed(run_cli: RunCli, home: Path) -> None:
    run_cli("init")
    # A password as a URL query parameter, in url and read_url.
    write_config(
        home,
        f'[store]\nurl = "postgresql://u@db.example/x?password={SECRET}"\n'
        f'read_url = "postgresql://u@standby.example/x?sslmode=require&sslpassword={SECRET}"\n',
    )
    out = output(run_cli("config", "check"))
    assert SECRET not in out
    assert 'url = "postgresql://u@db.example/x?password=********"   # file' in out
    assert "read_url = " in out and "sslmode=require&sslpassword=********" in out
    # A multi-host URL with a password: checked and masked, no crash.
    write_config(home, f'[store]\nurl = "postgresql://u:{SECRET}@a.example:5432,b.example/x"\n')
    proc = run_cli("config", "check")
    assert SECRET not in output(proc)
    assert 'url = "postgresql://u:********@a.example:5432,b.example/x"' in output(proc)
    # Any setting's URL, secret or not, is shown without its password.
    write_config(home, f'[avatar]\ndefault_url_allow = ["https://u:{SECRET}@cdn.example/a/"]\n')
    proc = run_cli("config", "check")
    assert SECRET not in output(proc)
    assert 'default_url_allow = ["https://u:********@cdn.example/a/"]   # file' in output(proc)
    # A keyword DSN: refused (not a URL) without echoing its password, by every command.
    write_config(home, f'[store]\nurl = "host=db.example user=u password={SECRET}"\n')
    for args in (("user", "list"), ("config", "check")):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 1 and SECRET not in output(proc)
        assert "not 'host=db.example user=u password=********'" in proc.stderr.decode()
    # The same from the environment, and for `store copy --to`.
    write_config(home, "")
    proc = run_cli(
        "user", "list", check=False, env={"USERPHOTO_STORE_URL": f"host=db password='{SECRET}'"}
    )
    assert proc.returncode == 1 and SECRET not in output(proc)
    assert "store.url in the environment (USERPHOTO_STORE_URL) must be" in proc.stderr.decode()
    proc = run_cli("store", "copy", "--to", f"dbname=x password={SECRET}", check=False)
    assert proc.returncode == 1 and SECRET not in output(proc), output(proc)
    assert "The store url must be sqlite:///PATH" in proc.stderr.decode()
    # A wrong-typed secret says what it must be without quoting it.
    write_config(
        home, '[directory]\nuri = "ldap://dc"\nbase_dn = "dc=x"\nbind_password = 7654321\n'
    )
    proc = run_cli("config", "check", check=False)
    assert proc.returncode == 1 and "7654321" not in output(proc)
    assert proc.stderr.decode().strip() == (
        f"error: directory.bind_password in {home / 'userphoto.toml'} must be a string"
    )


def test_unset_and_empty_secrets_are_shown_as_such(run_cli: RunCli, home: Path) -> None:
    run_cli("init")
    out = output(run_cli("config", "check"))
    assert "url = (not set)   # default" in out
    assert "bind_password = (not set)   # default" in out
    assert "client_secret = (empty)   # default" in out
    write_config(home, '[oidc]\nclient_secret = "x"\n[directory]\nbind_password = ""\n')
    out = output(run_cli("config", "check"))
    assert 'client_secret = "********"   # file' in out
    assert "bind_password = (empty)   # file" in out


def test_files_must_exist_and_secret_ones_be_private(run_cli: RunCli, home: Path) -> None:
    run_cli("init")
    secret = home / "bind-password"
    write_config(
        home,
        '[directory]\nuri = "ldap://dc"\nbase_dn = "dc=x"\nbind_password_file = "bind-password"\n',
    )
    proc = run_cli("config", "check", check=False)
    assert proc.returncode == 1 and proc.stderr.decode().count("error:") == 1, output(proc)
    assert f"directory.bind_password_file names {secret}, which is not a file" in output(proc)
    secret.write_text(SECRET)
    secret.chmod(0o644)
    proc = run_cli("config", "check")
    assert SECRET not in output(proc)
    assert (
        f"warning: directory.bind_password_file: {secret} is readable by others (mode 0644); "
        f"make it this service's only: chmod 600 {secret}"
    ) in proc.stderr.decode()
    assert "# valid, 1 warning(s)" in proc.stdout.decode()
    secret.chmod(0o600)
    proc = run_cli("config", "check")
    assert "warning" not in output(proc) and "# valid" in proc.stdout.decode()
    # A config file holding an inline secret must be private too; one without need not.
    config = write_config(home, f'[oidc]\nclient_secret = "{SECRET}"\n', mode=0o640)
    proc = run_cli("config", "check")
    assert SECRET not in output(proc)
    assert (
        f"warning: userphoto.toml (holding oidc.client_secret): {config} is readable by its "
        "group (mode 0640)"
    ) in proc.stderr.decode()
    write_config(home, "[server]\nport = 8081\n", mode=0o644)
    assert "warning" not in output(run_cli("config", "check"))
    # A store made readable by others (before `init` made it private): a warning too.
    (home / "userphoto.db").chmod(0o644)
    assert (
        f"warning: the store (token hashes, partners' signing secrets): {home / 'userphoto.db'} "
        "is readable by others (mode 0644)"
    ) in run_cli("config", "check").stderr.decode()
    # A missing TLS key file: `serve` refuses it with the words of `config check`.
    (home / "cert.pem").write_text("not read")
    write_config(home, '[server]\ntls_cert = "cert.pem"\ntls_key = "missing.key"\n')
    message = f"server.tls_key names {home / 'missing.key'}, which is not a file"
    assert message in run_cli("config", "check", check=False).stderr.decode()
    proc = run_cli("serve", "--port", str(free_port()), check=False)
    assert proc.returncode == 1 and f"error: {message}" in proc.stderr.decode(), output(proc)


def test_init_makes_the_data_folder_and_its_files_private(run_cli: RunCli, tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    env = {"USERPHOTO_HOME": str(home)}
    run_cli("init", env=env)
    run_cli("user", "add", "ada@contoso.example", "--name", "Ada", env=env)  # -wal, -shm
    assert oct(home.stat().st_mode & 0o777) == "0o700"
    names = sorted(p.name for p in home.iterdir())
    assert {"userphoto.db", "userphoto.toml"} <= set(names), names
    for path in home.iterdir():
        assert oct(path.stat().st_mode & 0o777) == "0o600", (path.name, oct(path.stat().st_mode))


# --- --connect: the real store, directory and OpenID provider --------------------------------
def missing_db_url() -> tuple[str, str]:
    name = f"userphoto_missing_{uuid.uuid4().hex[:8]}"
    return f"{SERVER}/{name}", name


def test_store_failures_are_one_line_with_the_cause_and_the_fix(
    run_cli: RunCli, pg_url: str
) -> None:
    run_cli("init")
    url, name = missing_db_url()
    role = f"nobody_{uuid.uuid4().hex[:6]}"
    no_role_url = pg_url.replace("postgres@", f"{role}@")
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    cases = [
        (url, f'database "{name}" does not exist; create it: createdb -O postgres {name}.'),
        (no_role_url, f'role "{role}" does not exist; create it: createuser {role}.'),
        (down, "not reachable (connection refused); start PostgreSQL there"),
    ]
    for store_url, fix in cases:
        env = {"USERPHOTO_STORE_URL": store_url}
        for args in (("user", "list"), ("store", "copy", "--to", "sqlite:///copy.db")):
            proc = run_cli(*args, check=False, env=env)
            lines = proc.stderr.decode().strip().splitlines()
            assert proc.returncode == 1 and len(lines) == 1, output(proc)
            assert lines[0].startswith("error: The PostgreSQL database at ") and fix in lines[0]
            assert "PoolTimeout" not in lines[0] and "psycopg" not in output(proc)
        proc = run_cli("config", "check", "--connect", check=False, env=env)
        assert proc.returncode == 1, output(proc)
        assert "store: FAILED: The PostgreSQL database at" in proc.stdout.decode()
        assert fix in proc.stdout.decode()
    # `serve` at start: the same line, before it listens.
    proc = run_cli(
        "serve", "--port", str(free_port()), check=False, env={"USERPHOTO_STORE_URL": url}
    )
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and f"createdb -O postgres {name}" in lines[0]
    # `store copy --to` a missing database: the same line.
    proc = run_cli("store", "copy", "--to", url, check=False)
    assert proc.returncode == 1 and f"createdb -O postgres {name}" in proc.stderr.decode()
    assert len(proc.stderr.decode().strip().splitlines()) == 1
    # A store that is there.
    proc = run_cli("config", "check", "--connect", env={"USERPHOTO_STORE_URL": pg_url})
    assert f"store: ok, PostgreSQL 127.0.0.1:5432/{pg_url.rsplit('/', 1)[1]}" in output(proc)


class Discovery(BaseHTTPRequestHandler):
    """A provider's discovery document, served by a real HTTP server on loopback."""

    def do_GET(self) -> None:
        issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path != "/.well-known/openid-configuration":
            self.send_error(404)
            return
        body = json.dumps(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + "/auth",
                "token_endpoint": issuer + "/token",
                "jwks_uri": issuer + "/jwks",
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def discovery() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_connect_fetches_discovery_and_binds_to_the_directory(
    run_cli: RunCli, home: Path, slapd: Slapd, discovery: str
) -> None:
    run_cli("init")
    settings = slapd.directory_settings()
    directory = (
        f'[directory]\nuri = "{slapd.uri}"\nbase_dn = "{settings["base_dn"]}"\n'
        f'bind_dn = "{settings["bind_dn"]}"\n'
    )
    oidc = '[oidc]\nissuer = "{issuer}"\nclient_id = "photos"\n'
    env = {
        "USERPHOTO_DIRECTORY_BIND_PASSWORD": str(settings["bind_password"]),
        "USERPHOTO_OIDC_CLIENT_SECRET": SECRET,
    }
    write_config(home, directory + oidc.format(issuer=discovery))
    proc = run_cli("config", "check", "--connect", env=env)
    out = proc.stdout.decode()
    assert "store: ok, SQLite " in out
    assert f"oidc: ok, discovery document of {discovery}" in out
    assert f"directory: ok, bound to {slapd.uri} as {settings['bind_dn']}" in out
    assert SECRET not in output(proc) and str(settings["bind_password"]) not in output(proc)
    # A provider that is down, and a wrong bind password: one line each, exit 1.
    down = f"http://127.0.0.1:{free_port()}"
    write_config(home, directory + oidc.format(issuer=down))
    env["USERPHOTO_DIRECTORY_BIND_PASSWORD"] = "wrong-" + SECRET
    proc = run_cli("config", "check", "--connect", check=False, env=env)
    out = proc.stdout.decode()
    assert proc.returncode == 1
    assert "store: ok" in out
    assert (
        "oidc: FAILED: The identity provider's discovery document could not be fetched "
        "(ConnectError)" in out
    )
    assert (
        f"directory: FAILED: {slapd.uri} refused the bind as {settings['bind_dn']}: wrong "
        "bind_dn or password." in out
    )
    assert SECRET not in output(proc)


def test_redact_hides_every_password_form() -> None:
    hidden = "********"
    cases = {
        "postgresql://u:pw@h/db": f"postgresql://u:{hidden}@h/db",
        "postgresql://u:p@ss@h:5432/db": f"postgresql://u:{hidden}@h:5432/db",
        "postgresql://u@h/db?password=pw&sslmode=require": (
            f"postgresql://u@h/db?password={hidden}&sslmode=require"
        ),
        "postgresql://u:pw@a:5432,b:5433/db": f"postgresql://u:{hidden}@a:5432,b:5433/db",
        "host=h password=pw dbname=x": f"host=h password={hidden} dbname=x",
        "host=h password = 'p w' user=u": f"host=h password = {hidden} user=u",
        "sqlite:////srv/userphoto.db": "sqlite:////srv/userphoto.db",
        "postgresql://u@h/db": "postgresql://u@h/db",
    }
    for raw, shown in cases.items():
        assert redact(raw) == shown, raw
    assert redact(12345) == hidden  # type: ignore[arg-type]
