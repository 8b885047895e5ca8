"""The OpenAPI description at /openapi.json: valid OpenAPI 3.1, and true of the real server.

`schemathesis` generates requests from the document (a bounded number per operation) and
sends them over a real socket to a `userphoto serve` of this module's own (writes included),
once without credentials and once as an admin; every response must be no 5xx and match the
document (status, content type, schema, headers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.support.server import Served, serving
from userphoto.api.openapi import document


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("openapi-home")
    with serving(home) as s:
        yield s


def test_document_is_valid_openapi_31(api: Served) -> None:
    r = httpx.get(f"{api.base}/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    served = r.json()
    assert served == document() and served["openapi"] == "3.1.0"
    validate(served)  # raises on any error
    paths = served["paths"]
    for prefix in ("/v1/users/", "/v1.0/users/", "/v1.0/me/", "/ews/", "/avatar/", "/v1/admin/"):
        assert any(p.startswith(prefix) for p in paths), prefix


def test_an_invalid_document_would_be_caught() -> None:
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    broken = document()
    broken["components"]["securitySchemes"]["bearer"]["type"] = "password"
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


BOUNDED = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def checker(operation: Any, headers: dict[str, str]) -> Callable[[], None]:
    """A Hypothesis test sending the operation's generated requests and checking answers."""
    # Two rules OpenAPI cannot state, so schema-valid requests may rightly be refused (400,
    # 415, 422) and only "valid data is accepted" is skipped there; every other check runs:
    # - whether uploaded bytes are an acceptable image (JPEG/PNG for Graph, decodable, big
    #   enough) depends on the bytes, not on a schema;
    # - the troubleshooter takes at most one of viewer, external, anonymous.
    unstated = operation.method.upper() == "PUT" or operation.path == "/v1/admin/diagnose"
    excluded = [positive_data_acceptance] if unstated else []

    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @BOUNDED
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, timeout=30, excluded_checks=excluded)

    return check


def findings(base: str, headers: dict[str, str]) -> list[str]:
    """Every operation, a bounded number of generated requests each; the failures found.

    (Driven through Hypothesis directly: schemathesis's pytest plugin does not load under
    this pytest version.)
    """
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    schema.config.update(base_url=base)
    found: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        check = checker(operation, headers)
        try:
            check()
        except Exception as exc:  # the minimal failing example, with schemathesis's report
            found.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
    assert operations >= 20  # the whole document was exercised
    return found


def test_server_matches_the_document_anonymous(api: Served) -> None:
    found = findings(api.base, {})
    assert not found, "\n\n".join(found)


def test_server_matches_the_document_as_admin(api: Served) -> None:
    found = findings(api.base, {"Authorization": f"Bearer {api.tokens['admin']}"})
    assert not found, "\n\n".join(found)
