#!/usr/bin/env python3
"""Opens N idle connections to a server and holds them, so benches/peers.sh
can read the server's RSS before and after (memory per idle connection).

    python3 benches/idle_conns.py KIND HOST PORT N GOFILE

KIND is what each connection does once before going idle:
  tls   a TLS handshake (SNI "localhost", no verification): an idle Gemini
        connection (a Gemini request closes the connection, so none is sent)
  http  one HTTP/1.1 keep-alive request, its response read whole
  ws    a WebSocket handshake on /echo and one 2-byte echo

Protocol on stdout (one line each, flushed), so the caller can sample RSS:
  "warm"          after a few throw-away exchanges (the server's lazy
                  set-up is then part of the baseline); then this waits for
                  GOFILE to exist before opening anything
  "ready OK FAIL" once N connections were attempted
  "alive K"       two seconds later: how many are still open
Then it holds them until killed. Nothing here is timed: it is not a load
generator, it only has to leave connections open.
"""

import base64
import os
import resource
import socket
import ssl
import sys
import time

# Longest wait for one connection's exchange: a busy server still answers.
IO_TIMEOUT = 10.0
# Longest wait for the caller's go-ahead after "warm".
GO_TIMEOUT = 120.0
# Throw-away exchanges before the baseline.
WARM = 8


def raise_nofile():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_head(sock):
    """Reads up to the end of an HTTP head; returns (head, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def open_tls(host, port, ctx):
    raw = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def open_http(host, port):
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head, rest = read_head(sock)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the response body")
        rest += chunk
    return sock


def open_ws(host, port):
    sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head, rest = read_head(sock)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("handshake refused: " + head.split(b"\r\n")[0].decode("latin-1"))
    # One masked binary frame "hi" (mask 0: the payload goes as is).
    sock.sendall(b"\x82\x82\x00\x00\x00\x00hi")
    while len(rest) < 4:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the echo")
        rest += chunk
    return sock


def opener(kind, host, port):
    if kind == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return lambda: open_tls(host, port, ctx)
    if kind == "http":
        return lambda: open_http(host, port)
    if kind == "ws":
        return lambda: open_ws(host, port)
    raise SystemExit(f"unknown kind {kind!r} (tls, http or ws)")


def alive(sock):
    """Open unless the peer closed or reset (pending data counts as open)."""
    dup = socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM)
    try:
        dup.setblocking(False)
        return dup.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        dup.close()


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    kind, host, port, n, gofile = sys.argv[1:]
    port, n = int(port), int(n)
    raise_nofile()
    connect = opener(kind, host, port)
    for _ in range(WARM):
        try:
            connect().close()
        except OSError as e:
            print(f"warm-up connection failed: {e}", file=sys.stderr)
    print("warm", flush=True)
    deadline = time.monotonic() + GO_TIMEOUT
    while not os.path.exists(gofile):
        if time.monotonic() > deadline:
            raise SystemExit("no go-ahead")
        time.sleep(0.05)
    held, failed, first_error = [], 0, None
    for _ in range(n):
        try:
            held.append(connect())
        except OSError as e:
            failed += 1
            first_error = first_error or e
    if first_error:
        print(f"{failed} connections failed; first: {first_error}", file=sys.stderr)
    print(f"ready {len(held)} {failed}", flush=True)
    time.sleep(2)
    print(f"alive {sum(alive(s) for s in held)}", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
