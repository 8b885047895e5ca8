"""The embedded store's serving credentials: API tokens (hashed) and partners."""

from __future__ import annotations

from datetime import datetime

from ...model import ApiToken, Partner
from .. import rows as shared
from ..base import ChangeKind
from .connection import SQLiteBase
from .schema import CODEC
from .schema import to_text as _ts


class Credentials(SQLiteBase):
    """API tokens and partners; any change tells followers to reload them."""

    def add_token(self, token: ApiToken) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_tokens (id, digest, address, admin, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.digest,
                    token.address,
                    int(token.admin),
                    _ts(token.created),
                    _ts(token.expires),
                ),
            )
            self._changed(db, ChangeKind.CREDENTIALS, [None])

    def list_tokens(self) -> list[ApiToken]:
        rows = self._db.execute(
            "SELECT id, digest, address, admin, created, expires, last_used FROM api_tokens "
            "ORDER BY created, id"
        ).fetchall()
        return [shared.token(r, CODEC) for r in rows]

    def delete_token(self, token_id: str) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,)).rowcount
            if gone:
                self._changed(db, ChangeKind.CREDENTIALS, [None])
            return bool(gone)

    def touch_token(self, token_id: str, at: datetime) -> None:
        with self._tx() as db:
            db.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (_ts(at), token_id))

    def put_partner(self, partner: Partner) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO partners VALUES (?, ?, ?, ?)",
                (partner.domain, partner.algorithm, partner.key, _ts(partner.created)),
            )
            self._changed(db, ChangeKind.CREDENTIALS, [None])

    def list_partners(self) -> list[Partner]:
        rows = self._db.execute(
            "SELECT domain, algorithm, key, created FROM partners ORDER BY domain"
        ).fetchall()
        return [shared.partner(r, CODEC) for r in rows]

    def delete_partner(self, domain: str) -> bool:
        with self._tx() as db:
            gone = db.execute("DELETE FROM partners WHERE domain = ?", (domain,)).rowcount
            if gone:
                self._changed(db, ChangeKind.CREDENTIALS, [None])
            return bool(gone)
