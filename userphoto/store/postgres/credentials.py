"""The scale-out store's serving credentials: API tokens (hashed) and partners."""

from __future__ import annotations

from datetime import datetime

from ...model import ApiToken, Partner
from .. import rows
from ..base import ChangeKind
from .connection import PostgresBase
from .schema import CODEC


class Credentials(PostgresBase):
    """API tokens and partners; any change tells followers to reload them."""

    def add_token(self, token: ApiToken) -> None:
        with self._tx() as tx:
            tx.conn.execute(
                "INSERT INTO api_tokens (id, digest, address, admin, created, expires) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (token.id, token.digest, token.address, token.admin, token.created, token.expires),
            )
            tx.changes.append((ChangeKind.CREDENTIALS, None))

    def list_tokens(self) -> list[ApiToken]:
        found = self._all_named(
            "SELECT id, digest, address, admin, created, expires, last_used FROM api_tokens "
            "ORDER BY created, id"
        )
        return [rows.token(r, CODEC) for r in found]

    def delete_token(self, token_id: str) -> bool:
        with self._tx() as tx:
            gone = tx.conn.execute("DELETE FROM api_tokens WHERE id = %s", (token_id,)).rowcount
            if gone:
                tx.changes.append((ChangeKind.CREDENTIALS, None))
            return bool(gone)

    def touch_token(self, token_id: str, at: datetime) -> None:
        with self._tx() as tx:  # no change published: nothing served depends on it
            tx.conn.execute("UPDATE api_tokens SET last_used = %s WHERE id = %s", (at, token_id))

    def put_partner(self, partner: Partner) -> None:
        with self._tx() as tx:
            tx.conn.execute(
                "INSERT INTO partners VALUES (%s, %s, %s, %s) ON CONFLICT (domain) DO UPDATE SET "
                "algorithm = excluded.algorithm, key = excluded.key, created = excluded.created",
                (partner.domain, partner.algorithm, partner.key, partner.created),
            )
            tx.changes.append((ChangeKind.CREDENTIALS, None))

    def list_partners(self) -> list[Partner]:
        found = self._all_named(
            "SELECT domain, algorithm, key, created FROM partners ORDER BY domain"
        )
        return [rows.partner(r, CODEC) for r in found]

    def delete_partner(self, domain: str) -> bool:
        with self._tx() as tx:
            gone = tx.conn.execute("DELETE FROM partners WHERE domain = %s", (domain,)).rowcount
            if gone:
                tx.changes.append((ChangeKind.CREDENTIALS, None))
            return bool(gone)
