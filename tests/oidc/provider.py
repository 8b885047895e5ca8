"""A real OpenID provider for the tests: `oidc-provider` from npm (tests/oidc/package.json,
installed by scripts/setup.sh with `npm ci`), run by Node.js on a loopback port.

`OpenIdProvider.start()` writes a fresh RSA signing key set, starts `provider.mjs` and waits
for its discovery document. `rotate()` restarts it on the same port with a new key (the old
one gone), as a provider rotating its keys does; `publish(keys, max_age)` restarts it with
exactly these (kid, key) pairs (the first signs) and its key set served with
Cache-Control max-age, to retire a key or reuse a key id for new material. `tamper(mode)`
switches the provider's test-only token post-processing on (see provider.mjs) for the cases
a correct provider never produces. `private_key` is the current signing key, for tests that
mint a token the way the provider would (an expired access token).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.net import free_port

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "provider.mjs"


def need_node() -> str:
    """The `node` binary and the installed package, or fail (CI) / skip (elsewhere)."""
    node = shutil.which("node")
    missing = []
    if node is None:
        missing.append("Node.js (node)")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        missing.append("tests/oidc/node_modules (scripts/setup.sh runs `npm ci` there)")
    if missing:
        message = "the OpenID provider needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


@dataclass
class OpenIdProvider:
    workdir: Path
    clients: list[dict[str, Any]]
    groups: dict[str, list[str]]
    port: int = field(default_factory=free_port)
    private_key: rsa.RSAPrivateKey | None = None
    kid: str = ""
    proc: subprocess.Popen | None = None
    generation: int = 0
    keys: list[tuple[str, rsa.RSAPrivateKey]] = field(default_factory=list)  # first signs
    jwks_max_age: int | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_keys(self) -> Path:
        self.generation += 1
        if not self.keys:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.keys = [(f"test-key-{self.generation}", key)]
        self.kid, self.private_key = self.keys[0]
        jwks = []
        for kid, key in self.keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
            jwk.pop("key_ops", None)  # PyJWT writes ["sign"]; the provider also verifies with it
            jwk.update(kid=kid, use="sig", alg="RS256")
            jwks.append(jwk)
        path = self.workdir / f"jwks-{self.generation}.json"
        path.write_text(json.dumps({"keys": jwks}))
        path.chmod(0o600)
        return path

    def start(self) -> OpenIdProvider:
        node = need_node()
        env = {
            **os.environ,
            "OIDC_PORT": str(self.port),
            "OIDC_JWKS": str(self._write_keys()),
            "OIDC_CLIENTS": json.dumps(self.clients),
            "OIDC_GROUPS": json.dumps(self.groups),
            "NODE_ENV": "test",
        }
        if self.jwks_max_age is not None:
            env["OIDC_JWKS_MAX_AGE"] = str(self.jwks_max_age)
        log = (self.workdir / f"provider-{self.generation}.log").open("wb")
        self.proc = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=HERE,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        url = self.issuer + "/.well-known/openid-configuration"
        while True:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    "oidc-provider did not start:\n"
                    + (self.workdir / f"provider-{self.generation}.log").read_text()
                )
            time.sleep(0.1)

    def stop(self) -> None:
        import signal

        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def rotate(self) -> None:
        """Restart with a brand-new signing key (the old one no longer listed)."""
        self.keys = []
        self.stop()
        self.start()

    def publish(
        self, keys: list[tuple[str, rsa.RSAPrivateKey]], max_age: int | None = None
    ) -> None:
        """Restart listing exactly `keys` (the first signs), served with this max-age."""
        self.keys, self.jwks_max_age = list(keys), max_age
        self.stop()
        self.start()

    def tamper(self, mode: str) -> None:
        r = httpx.get(f"{self.issuer}/__test/mode", params={"mode": mode}, timeout=5)
        assert r.status_code == 200 and r.json()["mode"] == mode

    def sign(self, claims: dict[str, Any], key: tuple[str, rsa.RSAPrivateKey] | None = None) -> str:
        """A token signed with the provider's current key (or `key`: kid and private key),
        as the provider would sign it."""
        kid, private = key or (self.kid, self.private_key)
        assert private is not None
        return jwt.encode(claims, private, "RS256", headers={"kid": kid})
