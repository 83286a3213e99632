#!/usr/bin/env python3
"""One round of each protocol against a running torsion, for the layout
profile (regenerate.sh): Gemini over TLS (a page, a missing page, a
directory), the HTTP redirect, the HTTPS status page, and WebSocket echo,
status and chat over wss://. Usage: exercise.py GEMINI_PORT HTTP_PORT WS_PORT"""

import asyncio
import socket
import ssl
import sys
import urllib.request

import websockets

gport, hport, wport = (int(p) for p in sys.argv[1:4])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def gemini(path):
    with socket.create_connection(("127.0.0.1", gport), timeout=60) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(f"gemini://localhost{path}\r\n".encode())
            data = b""
            while chunk := t.recv(65536):
                data += chunk
            return data.split(b"\r\n", 1)[0].decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


def http_status(url, context=None):
    opener = urllib.request.build_opener(
        NoRedirect, urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=60) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


async def websocket():
    base = f"wss://127.0.0.1:{wport}"
    async with websockets.connect(f"{base}/echo", ssl=ctx, open_timeout=60) as c:
        await c.send("hello")
        assert await c.recv() == "hello"
        await c.send(bytes(1000))
        assert len(await c.recv()) == 1000
    async with websockets.connect(f"{base}/status", ssl=ctx, open_timeout=60) as c:
        await asyncio.wait_for(c.recv(), 60)
    async with websockets.connect(f"{base}/chat", ssl=ctx, open_timeout=60) as c:
        await c.send("hi")


print("gemini", [gemini(p) for p in ["/", "/missing", "/about"]])
print("http", http_status(f"http://127.0.0.1:{hport}/x?y"))
print("https", http_status(f"https://127.0.0.1:{wport}/", ctx))
asyncio.run(websocket())
print("websocket ok")
