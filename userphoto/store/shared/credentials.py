"""Serving credentials: API tokens (hashed) and partners."""

from __future__ import annotations

from datetime import datetime

from ...model import ApiToken, Partner
from .. import rows
from ..base import ChangeKind
from ..sql import SQLStore, upsert

_PUT_PARTNER = upsert("partners", ("domain", "algorithm", "key", "created"), "domain")


class Credentials(SQLStore):
    """API tokens and partners; any change tells followers to reload them."""

    def add_token(self, token: ApiToken) -> None:
        codec = self.dialect.codec
        with self._tx() as tx:
            tx.run(
                "INSERT INTO api_tokens (id, digest, address, admin, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.digest,
                    token.address,
                    codec.write_flag(token.admin),
                    codec.write_time(token.created),
                    codec.write_time(token.expires),
                ),
            )
            tx.changed(ChangeKind.CREDENTIALS)

    def list_tokens(self) -> list[ApiToken]:
        found = self._all_named(
            "SELECT id, digest, address, admin, created, expires, last_used FROM api_tokens "
            "ORDER BY created, id"
        )
        return [rows.token(r, self.dialect.codec) for r in found]

    def delete_token(self, token_id: str) -> bool:
        return self._delete("DELETE FROM api_tokens WHERE id = ?", token_id)

    def touch_token(self, token_id: str, at: datetime) -> None:
        with self._tx() as tx:  # no change published: nothing served depends on it
            tx.run(
                "UPDATE api_tokens SET last_used = ? WHERE id = ?",
                (self.dialect.codec.write_time(at), token_id),
            )

    def put_partner(self, partner: Partner) -> None:
        created = self.dialect.codec.write_time(partner.created)
        with self._tx() as tx:
            tx.run(_PUT_PARTNER, (partner.domain, partner.algorithm, partner.key, created))
            tx.changed(ChangeKind.CREDENTIALS)

    def list_partners(self) -> list[Partner]:
        found = self._all_named(
            "SELECT domain, algorithm, key, created FROM partners ORDER BY domain"
        )
        return [rows.partner(r, self.dialect.codec) for r in found]

    def delete_partner(self, domain: str) -> bool:
        return self._delete("DELETE FROM partners WHERE domain = ?", domain)

    def _delete(self, sql: str, key: str) -> bool:
        with self._tx() as tx:
            gone = tx.run(sql, (key,))
            if gone:
                tx.changed(ChangeKind.CREDENTIALS)
            return bool(gone)
