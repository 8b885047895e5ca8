"""Real client libraries pointed at the server: Microsoft's msgraph-sdk and pyLibravatar."""

from __future__ import annotations

import asyncio
import io
from urllib.parse import urlsplit, urlunsplit

import httpx
import libravatar
import pytest
from PIL import Image

from tests.support.server import Served, addr


def graph_client(served: Served, token: str):
    from kiota_abstractions.authentication import (
        AccessTokenProvider,
        AllowedHostsValidator,
        BaseBearerTokenAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient

    host = urlsplit(served.base).hostname or "127.0.0.1"

    class StaticToken(AccessTokenProvider):
        async def get_authorization_token(self, uri, additional_authentication_context=None):
            return token

        def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
            return AllowedHostsValidator([host])

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken()))
    adapter.base_url = served.base + "/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def test_msgraph_sdk_reads_photo_metadata_bytes_and_me(served: Served) -> None:
    client = graph_client(served, served.tokens["bob"])
    me_client = graph_client(served, served.tokens["ada"])

    async def run():
        user = client.users.by_user_id(addr("ada"))
        meta = await user.photo.get()
        data = await user.photo.content.get()
        sized = await user.photos.by_profile_photo_id("96x96").content.get()
        listing = await user.photos.get()
        mine = await me_client.me.photo.content.get()
        return meta, data, sized, listing, mine

    meta, data, sized, listing, mine = asyncio.run(run())
    assert (meta.id, meta.width, meta.height) == ("648x648", 648, 648)
    assert Image.open(io.BytesIO(data)).size == (648, 648)
    assert Image.open(io.BytesIO(sized)).size == (96, 96)
    assert [p.id for p in listing.value][-1] == "648x648"
    assert mine == data


def test_msgraph_sdk_sees_graph_errors(served: Served) -> None:
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    client = graph_client(served, served.tokens["bob"])

    async def run():
        return await client.users.by_user_id(addr("max")).photo.content.get()

    with pytest.raises(ODataError) as caught:
        asyncio.run(run())
    assert caught.value.response_status_code == 404
    assert caught.value.error.code == "ImageNotFound"


def test_msgraph_sdk_uploads_a_photo(served: Served) -> None:
    from userphoto.demo import portrait

    client = graph_client(served, served.tokens["pam"])
    jpeg = portrait(11, 260, 260)

    async def run():
        await client.me.photo.content.put(jpeg)
        return await client.me.photo.get()

    meta = asyncio.run(run())
    assert meta.id == "240x240"


def served_url(served: Served, url: str) -> str:
    """Point a Libravatar URL (built for the public CDN offline) at our server."""
    parts = urlsplit(url)
    ours = urlsplit(served.base)
    return urlunsplit((ours.scheme, ours.netloc, parts.path, parts.query, ""))


def test_pylibravatar_urls_fetch_the_photo(served: Served) -> None:
    for email in (addr("ada"), " Ada@Contoso.TEST", "a.lovelace@contoso-alias.test"):
        url = libravatar.libravatar_url(email=email, size=120, default="404")
        r = httpx.get(served_url(served, url))
        assert r.status_code == 200, url
        assert Image.open(io.BytesIO(r.content)).size == (120, 120)
    unknown = libravatar.libravatar_url(email="ghost@contoso.test", default="404")
    assert httpx.get(served_url(served, unknown)).status_code == 404
    mp = libravatar.libravatar_url(email=addr("bob"), size=64, default="mm")
    r = httpx.get(served_url(served, mp))  # organization-only: the public sees a silhouette
    assert r.status_code == 200 and r.headers["x-photo-source"] == "default"
