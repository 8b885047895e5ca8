"""The OpenAPI 3.1 description of the HTTP APIs, served at `/openapi.json`.

Native (`/v1/users/…`), Microsoft Graph-compatible (`/v1.0/…`), EWS-compatible (`/ews/…`),
Libravatar (`/avatar/…`), the admin API (`/v1/admin/…`) and the small service routes. The
document is written here, by hand, next to nothing else: the surfaces' docstrings say how
they behave, this says what goes in and out. The test suite validates it
(`openapi-spec-validator`) and runs `schemathesis` from it against a real server, so a
response the document does not describe fails there. Over 400 lines on purpose: it is a
declarative spec, one dict per route, and reads best whole.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from ..model import HD_SIZES
from .common import Services

JSON = "application/json"
_ref = {"$ref": "#/components/schemas/Error"}
_error_json = {JSON: {"schema": _ref}}
_error_text = {"text/plain": {"schema": {"type": "string"}}}
_image = {
    "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
    "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
}
_redirect = {
    "description": "The user's picture is a web address: go there (never fetched by us).",
    "headers": {"location": {"schema": {"type": "string"}, "required": True}},
}
_not_modified = {"description": "`If-None-Match` matched the current ETag."}
_CACHE_HEADERS = {
    "etag": {"schema": {"type": "string"}, "description": "Strong ETag of the bytes."},
    "cache-control": {"schema": {"type": "string"}},
}


def _errors(content: dict[str, Any], *codes: int) -> dict[str, Any]:
    text = {
        400: "Bad parameter; the message names the valid values.",
        401: "Credentials given but not valid (or required and missing).",
        403: "Not allowed for this viewer.",
        404: "Nothing to show (outsiders get the same answer for unknown, hidden and "
        "photo-less users).",
        405: "Method not allowed here.",
        409: "The photo changed while it was read, or the account cannot hold photos.",
        413: "The upload is larger than [limits] max_bytes.",
        415: "Unsupported content type or image format.",
        422: "The image was refused (not an image, too small, too many pixels).",
        503: "A service this needs (the identity provider) is not reachable.",
    }
    return {str(code): {"description": text[code], "content": content} for code in codes}


# What `lookup.check_key` accepts (a subset where its rule is wider: no '/', '?', '%' or
# spaces in path segments): a user id, or an address.
_ADDRESS = r"[A-Za-z0-9._+'=-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){1,4}"
ADDRESS_PATTERN = f"^{_ADDRESS}$"
KEY_PATTERN = f"^([A-Za-z0-9._:{{}}~+=-]{{1,128}}|{_ADDRESS})$"
HASH_PATTERN = r"^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})(\.(jpg|jpeg|png))?$"
SIZE_PATTERN = (
    "^("
    + "|".join(map(str, HD_SIZES))
    + "|[Hh][Rr]("
    + "|".join(f"{s}[xX]{s}" for s in HD_SIZES)
    + "))$"
)
AVATAR_DEFAULTS = [
    "404",
    "mp",
    "mm",
    "identicon",
    "monsterid",
    "wavatar",
    "retro",
    "robohash",
    "pagan",
    "blank",
    "initials",
]


def _key(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": KEY_PATTERN},
    }


_KEY = _key("key", "The user's primary address, an alias, or the user id.")
_SIZE_Q = {
    "name": "size",
    "in": "query",
    "description": "Pixel size or EWS size code: " + ", ".join(map(str, HD_SIZES)) + ", HRnxn.",
    "schema": {"type": "string", "pattern": SIZE_PATTERN},
}
_SIZE_ID = {
    "name": "size",
    "in": "path",
    "required": True,
    "description": "Graph size id, e.g. 240x240.",
    "schema": {"enum": [f"{s}x{s}" for s in HD_SIZES]},
}
_PUT_BODY = {
    "required": True,
    "description": "The image: JPEG, PNG, or another decodable format (re-encoded on save).",
    "content": {
        t: {"schema": {"type": "string", "format": "binary"}}
        for t in ("image/jpeg", "image/png", "application/octet-stream")
    },
}
_GRAPH_PUT_BODY = {
    "required": True,
    "description": "JPEG or PNG bytes.",
    "content": _PUT_BODY["content"],
}


def _graph_photo_meta() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["@odata.mediaContentType", "id", "width", "height"],
        "properties": {
            "@odata.mediaContentType": {"type": "string"},
            "@odata.mediaEtag": {"type": "string"},
            "id": {"type": "string"},
            "width": {"type": ["integer", "null"]},
            "height": {"type": ["integer", "null"]},
        },
    }


def _graph_paths(prefix: str, params: list[dict[str, Any]], who: str) -> dict[str, Any]:
    graph_errors = _errors(_error_json, 400, 401, 403, 404, 405, 409, 503)
    tag = ["graph"]
    return {
        f"{prefix}/photo": {
            "parameters": params,
            "get": {
                "tags": tag,
                "summary": f"Metadata of {who} largest photo",
                "operationId": f"graph{'Me' if not params else ''}PhotoGet",
                "responses": {
                    "200": {
                        "description": "The photo's metadata.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/GraphPhoto"}}},
                    },
                    **graph_errors,
                },
            },
            "delete": {
                "tags": tag,
                "summary": f"Remove {who} photo",
                "operationId": f"graph{'Me' if not params else ''}PhotoDelete",
                "responses": {"204": {"description": "Removed."}, **graph_errors},
            },
        },
        f"{prefix}/photo/$value": {
            "parameters": params,
            "get": {
                "tags": tag,
                "summary": f"{who.capitalize()} photo's bytes",
                "operationId": f"graph{'Me' if not params else ''}PhotoValue",
                "responses": {
                    "200": {"description": "JPEG.", "content": _image, "headers": _CACHE_HEADERS},
                    "302": _redirect,
                    "304": _not_modified,
                    **graph_errors,
                },
            },
            "put": {
                "tags": tag,
                "summary": f"Upload {who} photo",
                "operationId": f"graph{'Me' if not params else ''}PhotoPut",
                "requestBody": _GRAPH_PUT_BODY,
                "responses": {
                    "200": {"description": "Saved: every size rendered."},
                    **_errors(_error_json, 400, 401, 403, 404, 405, 409, 413, 415, 422, 503),
                },
            },
        },
        f"{prefix}/photos": {
            "parameters": params,
            "get": {
                "tags": tag,
                "summary": "Every size this viewer may get",
                "operationId": f"graph{'Me' if not params else ''}Photos",
                "responses": {
                    "200": {
                        "description": "The sizes.",
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["value"],
                                    "properties": {
                                        "value": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/GraphPhoto"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    **graph_errors,
                },
            },
        },
        f"{prefix}/photos/{{size}}": {
            "parameters": [*params, _SIZE_ID],
            "get": {
                "tags": tag,
                "summary": "One size's metadata",
                "operationId": f"graph{'Me' if not params else ''}PhotoSize",
                "responses": {
                    "200": {
                        "description": "The size's metadata.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/GraphPhoto"}}},
                    },
                    **graph_errors,
                },
            },
        },
        f"{prefix}/photos/{{size}}/$value": {
            "parameters": [*params, _SIZE_ID],
            "get": {
                "tags": tag,
                "summary": "One size's bytes",
                "operationId": f"graph{'Me' if not params else ''}PhotoSizeValue",
                "responses": {
                    "200": {"description": "JPEG.", "content": _image, "headers": _CACHE_HEADERS},
                    "302": _redirect,
                    "304": _not_modified,
                    **graph_errors,
                },
            },
        },
    }


def document() -> dict[str, Any]:
    native_errors = _errors(_error_json, 400, 401, 403, 404, 405, 409, 503)
    text_errors = _errors(_error_text, 400, 401, 403, 404, 405, 409, 503)
    admin_errors = _errors(_error_json, 400, 401, 403, 503)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "userphoto",
            "version": __version__,
            "description": (
                "Contact photos: a native API, Microsoft Graph-, EWS- and Libravatar-compatible "
                "reads, and the admin troubleshooter. Bearer credentials: a userphoto token "
                "(`upt_…`), a federation partner's JWT, or an access token of the "
                "organization's OpenID provider issued for `[oidc] api_audience`. Without "
                "credentials only photos with visibility 'everyone' are shown."
            ),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}],
        "tags": [
            {"name": "native", "description": "userphoto's own API"},
            {"name": "graph", "description": "Microsoft Graph profile photos (v1.0)"},
            {"name": "ews", "description": "Exchange Web Services GetUserPhoto (REST form)"},
            {"name": "avatar", "description": "Libravatar / Gravatar"},
            {"name": "admin", "description": "Troubleshooting, for admins"},
            {"name": "service", "description": "Health and identity"},
        ],
        "paths": {
            "/healthz": {
                "get": {
                    "tags": ["service"],
                    "summary": "Liveness: the process answers (says nothing about the store)",
                    "operationId": "health",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "Up.",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "tags": ["service"],
                    "summary": "Readiness: store, image workers and change feed",
                    "operationId": "ready",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "Ready.",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "change_seq", "applied_seq"],
                                        "properties": {
                                            "status": {"const": "ready"},
                                            "change_seq": {"type": "integer"},
                                            "applied_seq": {"type": "integer"},
                                        },
                                    }
                                }
                            },
                        },
                        "503": {
                            "description": "Not ready: the store or the change feed.",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"type": "string"}},
                                    }
                                }
                            },
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "tags": ["service"],
                    "summary": "Prometheus metrics (admins, or [server] metrics_allow addresses)",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format 0.0.4.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(_error_json, 401, 403, 404),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "tags": ["service"],
                    "summary": "This document",
                    "operationId": "openapi",
                    "security": [{}],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1.",
                            "content": {JSON: {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/v1/whoami": {
                "get": {
                    "tags": ["service"],
                    "summary": "Who the credentials name",
                    "operationId": "whoami",
                    "responses": {
                        "200": {
                            "description": "The viewer.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Viewer"}}},
                        },
                        **_errors(_error_json, 401, 503),
                    },
                }
            },
            "/v1/users/{key}/photo": {
                "parameters": [_KEY],
                "get": {
                    "tags": ["native"],
                    "summary": "The photo as this viewer may see it",
                    "operationId": "nativePhotoGet",
                    "parameters": [
                        _SIZE_Q,
                        {
                            "name": "client",
                            "in": "query",
                            "schema": {"enum": ["legacy", "hd", "web"]},
                        },
                        {"name": "default", "in": "query", "schema": {"enum": ["initials", "404"]}},
                    ],
                    "responses": {
                        "200": {
                            "description": "The image; `X-Photo-Source` says which source.",
                            "content": _image,
                            "headers": {
                                **_CACHE_HEADERS,
                                "x-photo-source": {
                                    "schema": {"enum": ["hd", "directory", "url", "default"]}
                                },
                            },
                        },
                        "302": _redirect,
                        "304": _not_modified,
                        **native_errors,
                    },
                },
                "put": {
                    "tags": ["native"],
                    "summary": "Set the photo (admins; members their own)",
                    "operationId": "nativePhotoPut",
                    "requestBody": _PUT_BODY,
                    "responses": {
                        "200": {
                            "description": "Saved.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Saved"}}},
                        },
                        **_errors(_error_json, 400, 401, 403, 404, 405, 409, 413, 415, 422, 503),
                    },
                },
                "delete": {
                    "tags": ["native"],
                    "summary": "Remove the photo",
                    "operationId": "nativePhotoDelete",
                    "responses": {
                        "200": {
                            "description": "Removed.",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["removed"],
                                        "properties": {"removed": {"const": True}},
                                    }
                                }
                            },
                        },
                        **native_errors,
                    },
                },
            },
            "/v1/users/{key}/photo/meta": {
                "parameters": [_KEY],
                "get": {
                    "tags": ["native"],
                    "summary": "Which source answers, its sizes and ETag (and why, for members)",
                    "operationId": "nativePhotoMeta",
                    "parameters": [
                        _SIZE_Q,
                        {
                            "name": "client",
                            "in": "query",
                            "schema": {"enum": ["legacy", "hd", "web"]},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The metadata.",
                            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Meta"}}},
                        },
                        "304": _not_modified,
                        **native_errors,
                    },
                },
            },
            **_graph_paths(
                "/v1.0/users/{key}", [_key("key", "The user's id or address (UPN).")], "a user's"
            ),
            **_graph_paths("/v1.0/me", [], "the caller's"),
            "/ews/Exchange.asmx/s/GetUserPhoto": {
                "get": {
                    "tags": ["ews"],
                    "summary": "GetUserPhoto, as Exchange answers it",
                    "operationId": "ewsGetUserPhoto",
                    "parameters": [
                        {
                            "name": "email",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "pattern": ADDRESS_PATTERN},
                        },
                        {**_SIZE_Q, "description": "HR48x48 … HR648x648 (default HR96x96)."},
                    ],
                    "responses": {
                        "200": {
                            "description": "JPEG.",
                            "content": _image,
                            "headers": _CACHE_HEADERS,
                        },
                        "302": _redirect,
                        "304": _not_modified,
                        **text_errors,
                    },
                }
            },
            "/avatar/{hash}": {
                "get": {
                    "tags": ["avatar"],
                    "summary": "Libravatar / Gravatar avatar by address hash",
                    "operationId": "avatar",
                    "parameters": [
                        {
                            "name": "hash",
                            "in": "path",
                            "required": True,
                            "description": "MD5 or SHA-256 hex of a trimmed, lower-cased "
                            "address or alias (optionally .jpg / .png).",
                            "schema": {
                                "type": "string",
                                "pattern": HASH_PATTERN,
                            },
                        },
                        {
                            "name": "s",
                            "in": "query",
                            "description": "Size in pixels (empty: 80).",
                            "schema": {
                                "anyOf": [
                                    {"type": "integer", "minimum": 1, "maximum": 2048},
                                    {"const": ""},
                                ]
                            },
                        },
                        {
                            "name": "d",
                            "in": "query",
                            "description": "A default keyword, or a URL starting with one of "
                            "[avatar] default_url_allow (a 302; other URLs are refused with 400).",
                            "schema": {"enum": AVATAR_DEFAULTS},
                        },
                        {
                            "name": "f",
                            "in": "query",
                            "description": "y, yes, true or 1 force the default; any other "
                            "value does not (as Gravatar).",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "Image.",
                            "content": _image,
                            "headers": _CACHE_HEADERS,
                        },
                        "302": _redirect,
                        "304": _not_modified,
                        **text_errors,
                    },
                }
            },
            "/v1/admin/diagnose": {
                "get": {
                    "tags": ["admin"],
                    "summary": "Why a viewer sees what they see of a user's photo",
                    "operationId": "adminDiagnose",
                    "parameters": [
                        {
                            "name": "target",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string", "pattern": r"\S"},
                        },
                        {
                            "name": "viewer",
                            "in": "query",
                            "description": "Explain for this member (default: an anonymous "
                            "viewer). At most one of viewer, external, anonymous.",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "external",
                            "in": "query",
                            "description": "Explain for a federation partner's user.",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "anonymous",
                            "in": "query",
                            "schema": {"enum": ["1", "0", "true", "false", "yes", "no"]},
                        },
                        {
                            "name": "client",
                            "in": "query",
                            "schema": {"enum": ["legacy", "hd", "web"]},
                        },
                        _SIZE_Q,
                    ],
                    "responses": {
                        "200": {
                            "description": "The verdict.",
                            "content": {JSON: {"schema": {"type": "object"}}},
                        },
                        **admin_errors,
                        **_errors(_error_json, 404),
                    },
                }
            },
            "/v1/admin/doctor": {
                "get": {
                    "tags": ["admin"],
                    "summary": "Organization-wide checks",
                    "operationId": "adminDoctor",
                    "responses": {
                        "200": {
                            "description": "The report.",
                            "content": {JSON: {"schema": {"type": "object"}}},
                        },
                        **admin_errors,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "upt_ token, partner JWT, or the OpenID provider's access "
                    "token.",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "GraphPhoto": _graph_photo_meta(),
                "Viewer": {
                    "type": "object",
                    "required": ["kind", "address", "user_id", "partner"],
                    "properties": {
                        "kind": {"enum": ["member", "admin", "partner", "anonymous"]},
                        "address": {"type": ["string", "null"]},
                        "user_id": {"type": ["string", "null"]},
                        "partner": {"type": ["string", "null"]},
                    },
                },
                "Meta": {
                    "type": "object",
                    "required": ["source", "size", "sizes", "etag", "updated"],
                    "properties": {
                        "source": {"enum": ["hd", "directory", "url", "default"]},
                        "size": {"type": ["integer", "null"]},
                        "sizes": {"type": "array", "items": {"type": "integer"}},
                        "etag": {"type": ["string", "null"]},
                        "updated": {"type": ["string", "null"], "format": "date-time"},
                        "url": {"type": "string"},
                        "width": {"type": "integer"},
                        "height": {"type": "integer"},
                        "trace": {
                            "type": ["array", "null"],
                            "items": {
                                "type": "object",
                                "required": ["step", "verdict", "reason"],
                                "properties": {
                                    "step": {"type": "string"},
                                    "verdict": {"type": "string"},
                                    "reason": {"type": "string"},
                                },
                            },
                        },
                    },
                },
                "Saved": {
                    "type": "object",
                    "required": ["version", "sizes", "crop", "updated"],
                    "properties": {
                        "version": {"type": "integer"},
                        "sizes": {"type": "array", "items": {"type": "integer"}},
                        "crop": {"type": "string"},
                        "updated": {"type": "string", "format": "date-time"},
                    },
                },
            },
        },
    }


_DOCUMENT = document()


async def _openapi(_request: Request) -> Response:
    return JSONResponse(_DOCUMENT, headers={"cache-control": "public, max-age=300"})


def routes(_services: Services) -> list[BaseRoute]:
    return [Route("/openapi.json", _openapi, methods=["GET"])]
