#!/usr/bin/env python3
"""Hold many idle keep-alive client connections open to a proxy.

scripts/bench's idle10k scenario uses this to find what a proxy's memory
grows to when it holds thousands of clients that sent a request and then
went quiet (browsers, mobile apps, monitoring agents between polls).

It opens --connections TCP connections to 127.0.0.1:PORT in batches of
--batch; on each connection of a batch it sends one keep-alive GET and reads
the whole response, so every connection has been through a full request
before it idles (a proxy may keep per-connection state it only makes for a
request). Batching bounds how many requests are in flight at once, and so
how many upstream connections the proxy opens; the point is the memory of
idle *client* connections, not of a large upstream pool. When all are open
it prints "READY", then holds them, idle, until SIGTERM, SIGINT or
--hold seconds pass, and prints the one-line report wrk-report.lua prints:

  WEIR-BENCH requests=N duration_us=SETUP_US bytes=B p50_us=-1 p99_us=-1
             max_us=-1 err_connect=C err_read=R err_write=W err_status=S
             err_timeout=0

requests counts the connections that answered 200; duration_us is the time
spent opening them. Only the standard library is used.
"""

import argparse
import resource
import signal
import socket
import sys
import time

# How long one batch may take to connect and be answered, in seconds.
BATCH_TIMEOUT = 10.0
# Upper bound on a response head plus its small body.
MAX_RESPONSE = 64 * 1024


def raise_nofile(wanted):
    """Raise the soft RLIMIT_NOFILE to fit WANTED descriptors (up to the hard
    limit); return the resulting soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def response_complete(data):
    """True once DATA holds a whole response with a Content-Length body."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    length = 0
    for line in data[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(data) >= head_end + 4 + length


def one_request(sock, request):
    """Send REQUEST on SOCK and read the response; return (ok, bytes read,
    error kind) where error kind is "", "write", "read" or "status"."""
    try:
        sock.sendall(request)
    except OSError:
        return False, 0, "write"
    data = b""
    try:
        while not response_complete(data) and len(data) < MAX_RESPONSE:
            chunk = sock.recv(MAX_RESPONSE)
            if not chunk:
                return False, len(data), "read"
            data += chunk
    except OSError:
        return False, len(data), "read"
    if not data.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return False, len(data), "status"
    return True, len(data), ""


def open_batch(port, count, request, errors):
    """Open COUNT connections, run one request on each; return the sockets
    that answered 200 and the bytes read. Failures are tallied in ERRORS."""
    kept, total = [], 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(BATCH_TIMEOUT)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            errors["connect"] += 1
            sock.close()
            continue
        kept.append(sock)
    answered = []
    for sock in kept:
        ok, nbytes, kind = one_request(sock, request)
        total += nbytes
        if ok:
            answered.append(sock)
        else:
            errors[kind] += 1
            sock.close()
    return answered, total


def main(argv):
    """Open the connections, announce READY, hold them, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("--path", default="/")
    args = parser.parse_args(argv)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    limit = raise_nofile(args.connections + 64)
    if limit < args.connections + 16:
        print(f"RLIMIT_NOFILE is {limit}, too low for {args.connections} connections",
              file=sys.stderr)
        return 1

    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n\r\n").encode()
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0}
    conns, total = [], 0
    started = time.monotonic()
    while len(conns) + sum(errors.values()) < args.connections and not stop:
        want = min(args.batch, args.connections - len(conns) - sum(errors.values()))
        batch, nbytes = open_batch(args.port, want, request, errors)
        conns += batch
        total += nbytes
    setup_us = int((time.monotonic() - started) * 1e6)
    print("READY", flush=True)

    deadline = time.monotonic() + args.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"WEIR-BENCH requests={len(conns)} duration_us={setup_us} bytes={total} "
          f"p50_us=-1 p99_us=-1 max_us=-1 err_connect={errors['connect']} "
          f"err_read={errors['read']} err_write={errors['write']} "
          f"err_status={errors['status']} err_timeout=0", flush=True)
    for sock in conns:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
