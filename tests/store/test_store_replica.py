"""Read replicas: a real streaming hot standby (pg_basebackup -R on another port) serves reads,
but never data older than a change the node already knows of: while the replica lags (replay
paused) reads go to the primary, and back to the replica once it has caught up."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.support.postgres import PrivateCluster
from userphoto.errors import UserPhotoError
from userphoto.model import User
from userphoto.store import open_store
from userphoto.store.postgres import PostgresStore


def wait_until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


@pytest.mark.slow
def test_reads_go_to_a_current_replica_only(replicated: PrivateCluster) -> None:
    with psycopg.connect(replicated.url(replicated.primary_port), autocommit=True) as admin:
        admin.execute("CREATE DATABASE userphoto")
    primary = replicated.url(replicated.primary_port, "userphoto")
    replica = replicated.url(replicated.replica_port, "userphoto")
    node = open_store(primary, replica)
    other = PostgresStore(primary)  # another node writing to the primary
    assert isinstance(node, PostgresStore)
    try:
        node.add_user(User(id="ada", address="ada@x.example", display_name="Ada"))
        # Read-your-writes: right after the commit the answer is right, wherever it came from.
        found = node.find_user("ada")
        assert found is not None and found.display_name == "Ada"
        # Once the replica has replayed the write, reads are served by it.
        before = node.replica_reads
        wait_until(lambda: node.find_user("ada") is not None and node.replica_reads > before)

        # The replica stops replaying; another node changes Ada; this node learns of the
        # change (its follower reads the primary) and must not serve the stale row.
        with psycopg.connect(replica, autocommit=True) as standby:
            standby.execute("SELECT pg_wal_replay_pause()")
            other.update_user(User(id="ada", address="ada@x.example", display_name="Ada L."))
            node.latest_seq()
            before = node.replica_reads
            assert node.find_user("ada").display_name == "Ada L."  # type: ignore[union-attr]
            assert node.replica_reads == before  # answered by the primary
            stale = standby.execute("SELECT display_name FROM users WHERE id = 'ada'").fetchone()
            assert stale == ("Ada",)  # the replica really is behind
            standby.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: node.find_user("ada") is not None and node.replica_reads > before)
        assert node.find_user("ada").display_name == "Ada L."  # type: ignore[union-attr]
    finally:
        node.close()
        other.close()


def test_read_url_needs_postgres(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserPhotoError, match="read_url needs a PostgreSQL"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}", "postgresql://h/db")
