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

It opens them from OPENERS threads at once (blocking sockets; the TLS
handshakes release the GIL), so 10,000 are open within seconds: a server
may close a connection that stays silent too long (torsion's Gemini
listener waits 10 s for a request), and every one must still be open when
the caller reads the RSS.

When HOST is an IPv4 loopback address the connections come from
127.0.0.2, 127.0.0.3, ... with at most PER_SOURCE per source address, so a
server's per-client connection cap (torsion: --max-conns-per-ip, 256 by
default) never refuses them and every server is treated the same.

It needs N descriptors and a few more: the soft limit is raised to the hard
limit (and the hard limit too, when allowed), or it stops with a message.
"""

import base64
import concurrent.futures
import ipaddress
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
# Connections being opened at once.
OPENERS = 32
# Connections per source address: below torsion's default per-client cap
# (256), with room for the warm-up ones.
PER_SOURCE = 200
# Descriptors needed beyond one per connection (stdio, the interpreter's
# own, the duplicates the "alive" check makes one at a time).
SPARE_FDS = 64


def raise_nofile(n):
    """Allows N connections' descriptors, or stops with a message."""
    need = n + SPARE_FDS
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            raise SystemExit(
                f"{n} connections need {need} descriptors; the hard limit is {hard} "
                f"(raise it: ulimit -Hn {need}, as root, or LimitNOFILE=)"
            )
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def sources(host, n):
    """The source address of each of N connections (None: the kernel's pick)."""
    try:
        dest = ipaddress.ip_address(host)
    except ValueError:
        return [None] * n
    if dest.version != 4 or not dest.is_loopback:
        return [None] * n
    first = int(ipaddress.IPv4Address("127.0.0.2"))
    last = int(ipaddress.IPv4Address("127.255.255.254"))
    out = []
    for i in range(n):
        addr = first + i // PER_SOURCE
        if addr > last:
            raise SystemExit(f"{n} connections: more than 127.0.0.0/8 holds at {PER_SOURCE} each")
        out.append(str(ipaddress.IPv4Address(addr)))
    return out


def connect_from(host, port, source):
    if source is None:
        return socket.create_connection((host, port), timeout=IO_TIMEOUT)
    return socket.create_connection((host, port), timeout=IO_TIMEOUT, source_address=(source, 0))


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


def open_tls(host, port, source, ctx):
    raw = connect_from(host, port, source)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def open_http(host, port, source):
    sock = connect_from(host, port, source)
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


def open_ws(host, port, source):
    sock = connect_from(host, port, source)
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
        return lambda source: open_tls(host, port, source, ctx)
    if kind == "http":
        return lambda source: open_http(host, port, source)
    if kind == "ws":
        return lambda source: open_ws(host, port, source)
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
    raise_nofile(n)
    connect = opener(kind, host, port)
    froms = sources(host, n)
    for _ in range(WARM):
        try:
            connect(froms[0] if froms else None).close()
        except OSError as e:
            print(f"warm-up connection failed: {e}", file=sys.stderr)
    print("warm", flush=True)
    deadline = time.monotonic() + GO_TIMEOUT
    while not os.path.exists(gofile):
        if time.monotonic() > deadline:
            raise SystemExit("no go-ahead")
        time.sleep(0.05)
    def attempt(source):
        try:
            return connect(source)
        except OSError as e:
            return e

    held, failed, first_error = [], 0, None
    with concurrent.futures.ThreadPoolExecutor(max_workers=OPENERS) as pool:
        for result in pool.map(attempt, froms):
            if isinstance(result, OSError):
                failed += 1
                first_error = first_error or result
            else:
                held.append(result)
    if first_error:
        print(f"{failed} connections failed; first: {first_error}", file=sys.stderr)
    print(f"ready {len(held)} {failed}", flush=True)
    time.sleep(2)
    print(f"alive {sum(alive(s) for s in held)}", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
