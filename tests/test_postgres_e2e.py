"""End to end on PostgreSQL: a representative set of the HTTP serving tests (every surface:
native, Graph, EWS, avatar; no enumeration; uploads and deletes; changes from another
process) run again against a real `userphoto serve` whose store is PostgreSQL.

The tests are the ones in test_serve.py, collected here a second time: this module's
`served` fixture (a server seeded the same way, on a database of its own) takes the place
of the SQLite one for them. The CLI tests already run on both stores (test_cli.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.postgres import SERVER, drop_database
from tests.support.server import Served, serving
from tests.test_serve import (  # noqa: F401 - collected here again, on PostgreSQL
    test_avatar_by_md5_sha256_alias_and_normalized_address,
    test_avatar_defaults,
    test_avatar_sizes_made_from_master_never_upscaled,
    test_changes_from_another_process_show_within_a_second,
    test_ews_48_and_missing_hd_use_directory_inside_only,
    test_ews_sizes_case_insensitive_and_largest_available,
    test_graph_disabled_account_falls_back_to_directory_inside,
    test_graph_errors_in_graphs_shape,
    test_graph_metadata_value_and_sizes,
    test_graph_put_and_delete_through_the_photo_lifecycle,
    test_native_directory_thumbnail_inside_only,
    test_native_hidden_is_403_inside,
    test_native_photo_with_source_header_and_caching_headers,
    test_native_removal_record_blocks_directory_default_picture_instead,
    test_native_same_photo_by_id_alias_and_any_case,
    test_native_sizes_legacy_small_source_and_sd_account,
    test_native_web_address_picture_is_a_redirect,
    test_no_enumeration_for_external_viewers,
    test_revoked_token_stops_working_within_a_second,
)

pytestmark = pytest.mark.external  # needs PostgreSQL (not in `make test-fast`)


@pytest.fixture(scope="module")
def pg_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    name = f"userphoto_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is not reachable at {SERVER} ({exc}); .ci/run starts it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = f"{SERVER}/{name}"
    with pytest.MonkeyPatch.context() as env:
        # The seeding here, the server, and the CLI runs and `Served.app()` of the tests.
        env.setenv("USERPHOTO_STORE_URL", url)
        try:
            with serving(tmp_path_factory.mktemp("served-pg-home")) as s:
                yield s
        finally:
            drop_database(name)


@pytest.fixture
def served(pg_served: Served) -> Served:
    """test_serve.py's server, on PostgreSQL, for the tests collected here."""
    app = pg_served.app()
    try:
        assert app.settings.store_url.startswith("postgresql://")  # not silently SQLite
    finally:
        app.close()
    return pg_served
