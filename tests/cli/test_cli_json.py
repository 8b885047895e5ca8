"""`--json` on the listing commands, through the real entry point: the output parses and
carries the same facts as the table."""

from __future__ import annotations

import json

from tests.conftest import RunCli
from tests.support.images import face_photo


def test_user_list_json(run_cli: RunCli, tmp_path) -> None:
    run_cli("init")
    run_cli(
        "user",
        "add",
        "ada@contoso.example",
        "--name",
        "Ada Lovelace",
        "--alias",
        "al@contoso.example",
    )
    run_cli(
        "user", "add", "grace@contoso.example", "--name", "Grace Hopper", "--account", "sd_only"
    )
    (tmp_path / "a.jpg").write_bytes(face_photo(1))
    run_cli("set", "ada@contoso.example", str(tmp_path / "a.jpg"))
    listing = json.loads(run_cli("user", "list", "--json").stdout)
    assert listing["total"] == 2 and listing["offset"] == 0
    users = {u["address"]: u for u in listing["users"]}
    assert users["ada@contoso.example"]["photo"] is True
    assert users["ada@contoso.example"]["aliases"] == ["al@contoso.example"]
    assert users["ada@contoso.example"]["name"] == "Ada Lovelace"
    assert users["grace@contoso.example"]["photo"] is False
    assert users["grace@contoso.example"]["account"] == "sd_only"
    page = json.loads(run_cli("user", "list", "--json", "--search", "grace").stdout)
    assert [u["address"] for u in page["users"]] == ["grace@contoso.example"]
    assert page["total"] == 1
    empty = json.loads(run_cli("user", "list", "--json", "--search", "nobody").stdout)
    assert empty["users"] == [] and empty["total"] == 0


def test_sync_status_json(run_cli: RunCli) -> None:
    run_cli("init")
    run_cli("user", "add", "ada@contoso.example", "--name", "Ada Lovelace")
    status = json.loads(run_cli("sync", "--status", "--json").stdout)
    assert status["runs"] == {} and status["active_sync"] is None
    assert status["pending_writebacks"] == 0
    one = json.loads(run_cli("sync", "--status", "--json", "--user", "ada@contoso.example").stdout)
    assert one["address"] == "ada@contoso.example" and one["source"] == "local"
    assert one["directory_photo"] is None and one["directory_gone"] is False
    bad = run_cli("sync", "--json", check=False)
    assert bad.returncode == 2 and b"--json goes with --status" in bad.stderr


def test_partner_list_json(run_cli: RunCli) -> None:
    run_cli("init")
    assert json.loads(run_cli("partner", "list", "--json").stdout) == []
    secret = run_cli("partner", "add", "fabrikam.example").stdout.decode().strip()
    out = run_cli("partner", "list", "--json").stdout.decode()
    [partner] = json.loads(out)
    assert partner["domain"] == "fabrikam.example" and partner["algorithm"] == "HS256"
    assert "created" in partner and secret not in out  # never the secret
