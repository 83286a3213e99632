"""An independent WebSocket client for torsion's tests: Python `websockets`.

Usage: python3 ws_python_client.py ws://127.0.0.1:PORT
Exits 0 when echo (text and binary), ping and the close handshake behave;
non-zero with a message otherwise. Exit code 3 means `websockets` is not
installed (`pip install websockets`).
"""

import asyncio
import sys

try:
    import websockets
    from websockets.asyncio.client import connect
except ImportError as e:  # pragma: no cover - the test reports it
    print(f"python websockets is not installed: {e}", file=sys.stderr)
    sys.exit(3)


async def main(base: str) -> None:
    async with connect(base + "/echo", max_size=2**20, open_timeout=5, close_timeout=5) as ws:
        await ws.send("hello from python, ünïcödé")
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == "hello from python, ünïcödé", reply
        blob = bytes(range(256)) * 300
        await ws.send(blob)
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == blob, len(reply)
        # Fragmented message from an iterable: sent as several frames.
        await ws.send(["frag", "mented", " text"])
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert reply == "fragmented text", reply
        pong = await ws.ping(b"py")
        latency = await asyncio.wait_for(pong, 5)
        assert latency >= 0
        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, ws.close_code
        assert ws.close_reason == "", repr(ws.close_reason)

    # Over the server's limit -> closed by the server with 1009.
    async with connect(base + "/echo", max_size=None, open_timeout=5, close_timeout=5) as ws:
        await ws.send(b"x" * (2**20 + 1))
        try:
            await asyncio.wait_for(ws.recv(), 5)
            raise AssertionError("over-limit message was echoed")
        except websockets.exceptions.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1009, closed

    print(f"ok (websockets {websockets.__version__})")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
