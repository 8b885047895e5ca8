"""`userphoto token ...` and `userphoto partner ...` through the real entry point."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from userphoto import auth
from userphoto.app import App
from userphoto.model import ViewerKind


def test_tokens_create_list_revoke(run_cli, app: App) -> None:
    run_cli("user", "add", "ada@contoso.test", "--name", "Ada")
    token = run_cli("token", "create", "ADA@contoso.test").stdout.decode().strip()
    assert token.startswith(auth.TOKEN_PREFIX)
    unknown = run_cli("token", "create", "ghost@contoso.test", check=False)
    assert unknown.returncode == 1 and b"user add" in unknown.stderr
    admin = run_cli("token", "create", "it@contoso.test", "--admin").stdout.decode().strip()
    listing = run_cli("token", "list").stdout.decode()
    assert "member  ada@contoso.test" in listing and "admin   it@contoso.test" in listing
    assert token not in listing and admin not in listing
    stored = {t.digest for t in app.store.list_tokens()}
    assert auth.token_digest(token) in stored and token not in str(stored)
    checker = auth.Authenticator(app.store)
    assert checker.from_token(token).kind is ViewerKind.MEMBER
    assert checker.from_token(admin).kind is ViewerKind.ADMIN
    token_id = listing.split()[0]
    run_cli("token", "revoke", token_id)
    assert token_id not in run_cli("token", "list").stdout.decode()
    assert run_cli("token", "revoke", "nope", check=False).returncode == 1


def test_partners_shared_secret_and_public_keys(run_cli, tmp_path: Path) -> None:
    run_cli("init")
    secret = run_cli("partner", "add", "Fabrikam.example").stdout.decode().strip()
    assert len(secret) >= 48
    for name, key in (
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ec", ec.generate_private_key(ec.SECP256R1())),
    ):
        pem = tmp_path / f"{name}.pem"
        pem.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        out = run_cli("partner", "add", f"{name}.example", "--public-key", str(pem))
        assert out.stdout == b""  # no secret to print
        assert (b"RS256" if name == "rsa" else b"ES256") in out.stderr
    listing = run_cli("partner", "list").stdout.decode()
    assert "fabrikam.example  HS256" in listing and secret not in listing
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    refused = run_cli("partner", "add", "x.example", "--public-key", str(bad), check=False)
    assert refused.returncode == 1 and b"PEM" in refused.stderr
    assert run_cli("partner", "add", "not a domain", check=False).returncode == 1
    run_cli("partner", "remove", "fabrikam.example")
    assert "fabrikam" not in run_cli("partner", "list").stdout.decode()
