#!/usr/bin/env python3
"""A Python `websockets` echo server: a peer torsion's /echo is measured
against (benches/peers.sh). Not part of the product.

    python3 benches/py_ws_echo.py 127.0.0.1:0

Every path echoes. Default settings (no compression, as the other servers
measured), one asyncio event loop, one process. Prints
"py_ws_echo listening on ADDR" on stderr once it accepts connections.
"""

import asyncio
import signal
import sys

try:  # websockets >= 13
    from websockets.asyncio.server import serve
except ImportError:  # older releases: the legacy API has the same shape here
    from websockets.server import serve  # type: ignore


async def echo(ws, *_path):
    # Iterating ends cleanly on a close handshake; echo each message as is.
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:  # a client that vanishes is not the server's error
        pass


async def main(addr: str) -> None:
    host, _, port = addr.rpartition(":")
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    # compression=None: permessage-deflate would measure zlib, and torsion
    # and tokio-tungstenite do not negotiate it. max_size: 16 KiB messages
    # and more pass (the default 1 MiB already does).
    async with serve(echo, host or "127.0.0.1", int(port), compression=None) as server:
        bound = next(iter(server.sockets)).getsockname()
        print(f"py_ws_echo listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7004"))
