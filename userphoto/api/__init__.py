"""HTTP adapters: one module per API surface, all served by `server.PhotoServer`.

- `native`   /v1/users/{key}/photo (+ /meta)
- `graph`    Microsoft Graph-compatible /v1.0/users/{id|upn}/photo..., /v1.0/me/...
- `ews`      EWS GetUserPhoto REST
- `avatar`   Libravatar / Gravatar-compatible /avatar/{md5|sha256}
- `site`     everything else (a Starlette app: add routes there)
"""
