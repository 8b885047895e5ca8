"""Configuration: one declaration (userphoto/config.py) drives validation, the generated
userphoto.toml, docs/configuration.md and `userphoto config check`."""

from __future__ import annotations

import ast
import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from tests.conftest import RunCli
from userphoto import config
from userphoto.directory.config import DirectoryConfig

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "userphoto"


def keys_read_by_the_code() -> set[tuple[str, str]]:
    """Every (section, key) the code reads: `settings.get("section", "key")` and the typed
    views (`settings.server.port`) anywhere, and the `[directory]` keys its parser reads
    (`get("key", ...)`, `raw.get("key")`)."""
    found: set[tuple[str, str]] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in TYPED_VIEWS
                and "settings" in ast.unparse(node.value.value)
            ):
                found.add((node.value.attr, node.attr))
        directory_parser = path == PACKAGE / "directory" / "config.py"
        if directory_parser:  # the keys of [directory] itself (not account_state's fields)
            tree = next(
                n
                for n in ast.walk(tree)
                if isinstance(n, ast.FunctionDef) and n.name == "from_dict"
            )
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            strings = [a.value for a in node.args if isinstance(a, ast.Constant)]
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else (node.func.id if isinstance(node.func, ast.Name) else "")
            )
            if name != "get" or not strings or not isinstance(strings[0], str):
                continue
            if (
                len(strings) >= 2
                and isinstance(strings[1], str)
                and isinstance(node.func, ast.Attribute)
                and "settings" in ast.unparse(node.func.value)
            ):
                found.add((strings[0], strings[1]))
            elif directory_parser and ast.unparse(node.func) in ("get", "raw.get"):
                found.add(("directory", strings[0]))
    return found


TYPED_VIEWS = {
    "server": config.ServerSettings,
    "web": config.WebSettings,
    "workers": config.WorkersSettings,
    "avatar": config.AvatarSettings,
    "oidc": config.OidcSettings,
}
KIND_TYPES = {
    config.INT: "int",
    config.FLOAT: "float",
    config.BOOL: "bool",
    config.STR: "str",
    config.STRS: "tuple[str, ...]",
}


def settings_get_calls() -> list[tuple[str, int, str]]:
    """(file, line, call) of every `<...settings>.get(...)` in the package, tests and bench."""
    calls = []
    for root in (PACKAGE, REPO / "tests", REPO / "bench"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "get"
                    and (
                        ast.unparse(node.func.value).endswith("settings")
                        or (path.name == "config.py" and ast.unparse(node.func.value) == "self")
                    )
                ):
                    calls.append((str(path.relative_to(REPO)), node.lineno, ast.unparse(node)))
    return calls


def test_no_call_site_repeats_a_default() -> None:
    """The declaration (`config.KEYS`) is the only place a default lives: `Settings.get`
    takes none, and no caller passes one."""
    calls = settings_get_calls()
    assert any(c == "self.get(key.section, key.name)" for _, _, c in calls)  # the scan works
    with_default = [c for c in calls if len(ast.parse(c[2], mode="eval").body.args) > 2]  # type: ignore[attr-defined]
    assert not with_default, f"a default repeated at the call site: {with_default}"
    with pytest.raises(TypeError):
        config.Settings(Path("/nonexistent")).get("server", "port", 1)  # type: ignore[call-arg]


def test_typed_views_are_the_declared_keys_with_their_types(tmp_path: Path) -> None:
    """Each section's typed view has one field per declared key, of the key's kind, and
    takes its values (defaults included) from the declaration."""
    for section, view in TYPED_VIEWS.items():
        declared = config.BY_SECTION[section]
        fields = {f.name: f.type for f in dataclasses.fields(view)}
        assert set(fields) == set(declared), section
        for name, kind in fields.items():
            assert kind == KIND_TYPES[declared[name].kind], (section, name, kind)
        defaults = config.Settings(tmp_path).typed(view, section)
        for name, key in declared.items():
            value = getattr(defaults, name)
            want = tuple(key.default) if isinstance(key.default, list) else key.default
            assert value == want and type(value) is type(want), (section, name)
    server = {"header_timeout": 3, "domains": ["a.example"]}
    configured = config.Settings(tmp_path, {"server": server})
    timeout = configured.server.header_timeout
    assert timeout == 3.0 and type(timeout) is float
    assert configured.server.domains == ("a.example",)
    assert dataclasses.is_dataclass(configured.server)
    with pytest.raises(dataclasses.FrozenInstanceError):
        configured.server.port = 1  # type: ignore[misc]


def test_every_key_the_code_reads_is_declared_and_documented() -> None:
    read = keys_read_by_the_code()
    assert ("server", "port") in read and ("directory", "delete_guard") in read  # the scan works
    declared = {(k.section, k.name) for k in config.KEYS}
    assert read <= declared, f"read but not declared in userphoto/config.py: {read - declared}"
    docs = (REPO / "docs" / "configuration.md").read_text()
    assert docs == config.markdown(), "regenerate: userphoto config docs > docs/configuration.md"
    for key in config.KEYS:
        assert f"`{key.name}`" in docs and key.env in docs


def test_every_rule_of_the_declaration_names_declared_keys_and_passes_the_defaults() -> None:
    """`needs` names keys of the same section; every default (and example) obeys its rule."""
    for key in config.KEYS:
        for need in key.needs:
            for name in need.split("|"):
                assert name in config.BY_SECTION[key.section], (key.name, name)
        for value in (key.default, key.example):
            if key.rule is not None and value not in (None, ""):
                assert key.rule(value) is None, (key.name, value)


def test_directory_defaults_match_the_declaration() -> None:
    """DirectoryConfig is the parsed form; its defaults must be the declared ones."""
    fields = {
        f.name: f.default
        for f in dataclasses.fields(DirectoryConfig)
        if f.default is not dataclasses.MISSING
    }
    for key in config.BY_SECTION["directory"].values():
        if key.name in fields:
            assert fields[key.name] == key.default, key.name
    parsed = DirectoryConfig.from_dict({"uri": "ldap://x", "base_dn": "dc=x"})
    for key in config.BY_SECTION["directory"].values():
        if key.name in fields and key.default is not None:
            assert getattr(parsed, key.name) == key.default, key.name


def test_generated_toml_lists_every_key_with_its_default(run_cli: RunCli, home: Path) -> None:
    run_cli("init")
    text = (home / "userphoto.toml").read_text()
    active = tomllib.loads(text)
    setting = re.compile(r"^(# )?([a-z_]+ = .*|\[[a-z]+\])$")
    uncommented = tomllib.loads(
        "\n".join(line.removeprefix("# ") for line in text.splitlines() if setting.match(line))
    )
    optional = {section.name for section in config.SECTIONS if section.optional}
    for key in config.KEYS:
        assert f"{key.name} = " in text, key.name
        if key.default is not None and key.section not in optional:
            assert active[key.section][key.name] == key.default, key.name
        shown = key.default if key.default is not None else key.example
        assert uncommented[key.section][key.name] == shown, key.name
    # The directory and OpenID sign-in are off until configured: written commented out.
    assert optional == {"directory", "oidc"} and not optional & set(active)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nprot = 9000\n", "unknown key prot in [server] of {file}; did you mean port?"),
        ("[limts]\nmax_bytes = 1\n", "unknown section [limts] in {file}; did you mean [limits]?"),
        ('[server]\nport = "80"\n', "server.port in {file} must be an integer"),
        ("port = 9000\n", "port in {file} is outside any section; did you mean [server] port?"),
        ("[directory]\nwriteback_sise = 96\n", "did you mean writeback_size?"),
    ],
)
def test_unknown_or_wrong_keys_are_errors_naming_key_file_and_closest(
    run_cli: RunCli, home: Path, toml: str, message: str
) -> None:
    run_cli("init")
    path = home / "userphoto.toml"
    path.write_text(toml)
    for args in (("user", "list"), ("config", "check")):
        proc = run_cli(*args, check=False)
        assert proc.returncode == 1
        assert message.format(file=path) in proc.stderr.decode(), proc.stderr


def test_environment_overrides_are_validated_the_same_way(run_cli: RunCli) -> None:
    run_cli("init")
    typo = run_cli("config", "check", check=False, env={"USERPHOTO_SERVER_PROT": "9000"})
    assert typo.returncode == 1
    assert (
        "unknown setting USERPHOTO_SERVER_PROT in the environment; did you mean "
        "USERPHOTO_SERVER_PORT?" in typo.stderr.decode()
    )
    bad = run_cli("user", "list", check=False, env={"USERPHOTO_LIMITS_MAX_BYTES": "lots"})
    assert bad.returncode == 1 and "limits.max_bytes in the environment" in bad.stderr.decode()
    good = run_cli(
        "config",
        "check",
        env={"USERPHOTO_SERVER_PORT": "9090", "USERPHOTO_POLICY_SELF_SERVICE": "false"},
    ).stdout.decode()
    assert "port = 9090   # environment USERPHOTO_SERVER_PORT" in good
    assert "self_service = false   # environment USERPHOTO_POLICY_SELF_SERVICE" in good


def test_config_check_prints_the_effective_settings_with_secrets_masked(
    run_cli: RunCli, home: Path, tmp_path: Path
) -> None:
    run_cli("init")
    other = tmp_path / "other.toml"
    other.write_text(
        '[store]\nurl = "postgresql://photos:hunter2@db.example:5433/photos"\n'
        '[directory]\nuri = "ldap://dc.example"\nbase_dn = "dc=example"\n'
        'bind_password = "s3cret-pw"\n'
    )
    out = run_cli("config", "check", "--file", str(other)).stdout.decode()
    assert f"# config file: {other}" in out
    assert "hunter2" not in out and "s3cret-pw" not in out
    assert 'url = "postgresql://photos:********@db.example:5433/photos"   # file' in out
    assert 'bind_password = "********"   # file' in out
    assert "max_bytes = 4194304   # default" in out
    # A [directory] value the directory code refuses is an error here too.
    other.write_text('[directory]\nuri = "ldap://dc.example"\nbase_dn = "x"\nwriteback_size = 50\n')
    proc = run_cli("config", "check", "--file", str(other), check=False)
    assert proc.returncode == 1 and "writeback_size must be one of" in proc.stderr.decode()
