"""The pages' icon (``GET /favicon.ico``): a 16×16 red square with a white handset bar, made
here as a PNG inside an ICO container, so no binary file ships and no page load ends in a 404."""

from __future__ import annotations

import struct
import zlib

from aiohttp import web

SIZE = 16
RED = (0xB7, 0x1C, 0x1C, 0xFF)  # the console's header colour
WHITE = (0xFF, 0xFF, 0xFF, 0xFF)


def _pixel(x: int, y: int) -> tuple[int, int, int, int]:
    handset = 4 <= y <= 11 and (x in (3, 4, 11, 12) or (y in (4, 5) and 3 <= x <= 12))
    return WHITE if handset else RED


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"".join(bytes(_pixel(x, y)) for x in range(SIZE)) for y in range(SIZE))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _ico(png: bytes) -> bytes:
    directory = struct.pack("<HHH", 0, 1, 1)  # reserved, type icon, one image
    entry = struct.pack("<BBBBHHII", SIZE, SIZE, 0, 0, 1, 32, len(png), 6 + 16)
    return directory + entry + png


ICON = _ico(_png())


async def favicon(request: web.Request) -> web.Response:
    """Open like the pages themselves; cached for a day."""
    return web.Response(body=ICON, content_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
