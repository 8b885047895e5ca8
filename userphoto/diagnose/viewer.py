"""Who looks: the viewer a diagnosis is for, from the options given, and the target's lookup."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import replace

from ..auth import Authenticator, Unauthorized
from ..context import Context
from ..findings import Cause, cause
from ..model import ANONYMOUS, User, Viewer, ViewerKind
from ..store import UserQuery


def viewer_of(
    app: Context,
    address: str | None,
    external: str | None,
    anonymous: bool,
    token: str | None,
    causes: list[Cause],
) -> tuple[Viewer, str]:
    """The viewer and how to name it; credential problems are added to `causes`."""
    store = app.store
    partners = {p.domain for p in store.list_partners()}
    if token:
        try:
            who = Authenticator(store).from_token(token)
        except Unauthorized as exc:
            causes.append(token_cause(exc.message, external))
            return ANONYMOUS, "a caller whose token is refused"
        return who, f"{who.kind.value} {who.address}"
    if anonymous:
        return ANONYMOUS, "an anonymous viewer"
    if external:
        domain = external.strip().lower().lstrip("@")
        if domain not in partners:
            causes.append(cause("partner_not_configured", domain=domain))
            return ANONYMOUS, f"a user of {domain} (not a federation partner)"
        return Viewer(ViewerKind.PARTNER, f"someone@{domain}", None, domain), (
            f"a user of partner {domain}"
        )
    if address:
        found = store.find_user(address)
        if found is not None:
            return Viewer(ViewerKind.MEMBER, found.address, found.id), f"member {found.address}"
        domain = address.rpartition("@")[2].lower()
        if domain in partners:
            return Viewer(ViewerKind.PARTNER, address.lower(), None, domain), (
                f"{address} (user of partner {domain})"
            )
        if domain not in store.domains():
            causes.append(cause("partner_not_configured", domain=domain))
            return ANONYMOUS, f"{address} (not a federation partner)"
        return Viewer(ViewerKind.MEMBER, address.lower(), None), f"member {address}"
    return Viewer(ViewerKind.MEMBER), "a member of the organization"


def token_cause(message: str, external: str | None) -> Cause:
    advice = "Ask the partner to issue a fresh token."
    if "issuer" in message and external:
        advice = "Register the partner; tokens must carry iss = its domain."
    elif "audience" in message:
        advice = "The token's aud must be one of this organization's mail domains."
    elif "expired" in message:
        advice = "The token's exp has passed: the partner's client must fetch a new token."
    found = cause("token_invalid", reason=message, advice=advice)
    if "issuer" in message and external:  # the one refusal a command fixes
        found = replace(found, fix=cause("partner_not_configured", domain=external).fix)
    return found


def not_found(app: Context, target: str) -> Cause:
    key = target.strip().lower()
    local = key.partition("@")[0]
    pool: list[str] = []
    for probe in {local[:3], local[-3:], key.rpartition("@")[2][:4]}:
        if probe:
            pool += [u.address for u in _search(app, probe)]
    close = difflib.get_close_matches(key, sorted(set(pool)), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return cause("user_not_found", target=target, hint=hint, search=local or key)


def _search(app: Context, text: str) -> Iterable[User]:
    return app.store.list_users(UserQuery(search=text, limit=200))
