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
    """The viewer and how to name it; credential problems are added to `causes`.

    The viewer is what the server makes of the request: a request without a credential is
    answered as an anonymous one, whoever sends it (an --external viewer without --token);
    with a token, the token decides (a refused one is a 401, whatever else is said).
    """
    store = app.store
    partners = {p.domain for p in store.list_partners()}
    domain = external.strip().lower().lstrip("@") if external else None
    if token:
        try:
            who = Authenticator(store).from_token(token)
        except Unauthorized as exc:
            causes.append(token_cause(exc.message, domain))
            if domain:
                return ANONYMOUS, f"a user of {domain} whose token is refused (401)"
            return ANONYMOUS, "a caller whose token is refused (401)"
        if who.kind is ViewerKind.PARTNER:
            text = f"{who.address}, a user of partner {who.partner} (by its token)"
            if domain and who.partner != domain:
                text += f"; the token is {who.partner}'s, not {domain}'s"
            return who, text
        return who, f"{who.kind.value} {who.address} (by the token)"
    if anonymous:
        return ANONYMOUS, "an anonymous viewer"
    if domain:
        # No token: the request carries no credential, so the server answers it as it
        # answers anyone's (the same as --anonymous). --token JWT checks the partner's token.
        if domain not in partners:
            causes.append(cause("partner_not_configured", domain=domain))
            return ANONYMOUS, (
                f"a user of {domain} (not a federation partner) whose request carries no "
                "credential, so it is answered as an anonymous one"
            )
        return ANONYMOUS, (
            f"a user of partner {domain} whose request carries no credential, so it is "
            "answered as an anonymous one (--token JWT: as the partner's user)"
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
            return ANONYMOUS, (
                f"{address} (not a federation partner), whose request carries no credential "
                "it could have, so it is answered as an anonymous one"
            )
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
