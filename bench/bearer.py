"""Bearer check cost: the identity provider's JWT access token against a userphoto token.

A provider access token is verified once (RS256 signature, claims, the user lookup) and then
answered from the Authenticator's memory until it expires, like every other credential. This
measures, in one process and one run, against the real test OpenID provider
(tests/oidc/, Node.js), three figures per credential kind:
  - first sight: `_verify` (what the first request with a new token costs),
  - steady state: `from_header` on a header seen before (every later request),
and prints them as ratios to the `upt_` token, the reference.

    .venv/bin/python -m bench.bearer [--rounds 2000] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import parse
from tests.oidc.provider import OpenIdProvider
from userphoto import auth
from userphoto.config import Settings
from userphoto.model import User
from userphoto.oidc import OidcConfig, OidcProvider
from userphoto.store import open_store

AUDIENCE = "https://photos.bench.test"


def per_call(fn: Callable[[], object], rounds: int) -> float:
    """Median of 5 batches, seconds per call."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        times.append((time.perf_counter() - start) / rounds)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parse(parser, {"rounds": 200}).rounds
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        provider = OpenIdProvider(work, clients=[], groups={}).start()
        try:
            store = open_store(f"sqlite:///{work / 'bench.db'}")
            store.add_user(User(id="u1", address="ada@bench.test", display_name="Ada"))
            _record, token = auth.create_token(store, "ada@bench.test")
            settings = Settings(
                work,
                {
                    "oidc": {
                        "issuer": provider.issuer,
                        "client_id": "bench",
                        "client_secret": "unused",
                        "api_audience": AUDIENCE,
                    }
                },
            )
            config = OidcConfig.from_settings(settings)
            assert config is not None
            authenticator = auth.Authenticator(store, oidc=OidcProvider(config))
            now = int(time.time())
            jwt_token = provider.sign(
                {
                    "iss": provider.issuer,
                    "aud": AUDIENCE,
                    "sub": "ada",
                    "email": "ada@bench.test",
                    "iat": now,
                    "exp": now + 3600,
                }
            )
            kinds = {"upt_ token": token, "provider JWT": jwt_token}
            for credential in kinds.values():  # warm: keys fetched, header cached
                authenticator.from_token(credential)
            first = {
                k: per_call(lambda c=c: authenticator._verify(c), rounds // 10)
                for k, c in kinds.items()
            }
            headers = {k: f"Bearer {c}" for k, c in kinds.items()}
            steady = {
                k: per_call(lambda h=h: authenticator.from_header(h), rounds)
                for k, h in headers.items()
            }
        finally:
            provider.stop()
    ref_first, ref_steady = first["upt_ token"], steady["upt_ token"]
    print(f"{'credential':<14} {'first sight':>14} {'ratio':>7} {'steady':>12} {'ratio':>7}")
    for kind in kinds:
        print(
            f"{kind:<14} {first[kind] * 1e6:>11.1f} µs {first[kind] / ref_first:>6.1f}× "
            f"{steady[kind] * 1e6:>9.2f} µs {steady[kind] / ref_steady:>6.2f}×"
        )


if __name__ == "__main__":
    main()
