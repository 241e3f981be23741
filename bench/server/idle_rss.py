#!/usr/bin/env python3
"""idle_rss.py: the HTTP example server's memory per idle keep-alive connection after large bodies.

Starts examples/http_server.cpp (colony_http_server), opens N keep-alive connections that each
POST a body of SIZE bytes (to /echo, or to / with --path=/; --size=0: a GET) and read the whole
response, then leaves them idle, and reports the server's VmRSS (/proc/PID/status): before,
with the connections idle, and after they are closed.

--tls: the server is started with a certificate made here (openssl) and every connection is
HTTPS (the handshake done, one request answered, then idle). --go: BIN is Go's
bench/go/servers/hello (its -addr/-procs/-tls-cert/-tls-key flags), for the same figures of
net/http.

  bench/server/idle_rss.py build/release/examples/colony_http_server
  bench/server/idle_rss.py BIN --conns=300 --size=1048576 --path=/echo --procs=2
  bench/server/idle_rss.py BIN --conns=1000 --size=0 --path=/ --tls
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("closed before the response header")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    got = len(rest)
    while got < length:
        chunk = s.recv(min(1 << 20, length - got))
        if not chunk:
            raise RuntimeError("closed in the response body")
        got += len(chunk)
    return status


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 (openssl req); returns (cert, key) paths."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--path", default="/echo")
    ap.add_argument("--procs", type=int, default=0)
    ap.add_argument("--port", type=int, default=18190)
    ap.add_argument("--rounds", type=int, default=1,
                    help="open, use, idle and close the connections this many times")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds to wait before reading RSS")
    ap.add_argument("--tls", action="store_true", help="HTTPS, with a certificate made here")
    ap.add_argument("--go", action="store_true",
                    help="BIN is bench/go/servers/hello (Go flag syntax)")
    a = ap.parse_args()

    addr = ("127.0.0.1", a.port)
    tmp = tempfile.TemporaryDirectory()
    if a.go:
        cmd = [a.server, "-addr", f"127.0.0.1:{a.port}", "-procs", str(a.procs)]
    else:
        cmd = [a.server, f"--addr=127.0.0.1:{a.port}", f"--procs={a.procs}"]
    client_ctx = None
    if a.tls:
        cert, key = make_cert(tmp.name)
        cmd += (["-tls-cert", cert, "-tls-key", key] if a.go
                else [f"--tls-cert={cert}", f"--tls-key={key}"])
        client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_ctx.load_verify_locations(cert)

    def connect():
        s = socket.create_connection(addr)
        if client_ctx is None:
            return s
        return client_ctx.wrap_socket(s, server_hostname="127.0.0.1")

    srv = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        srv.stdout.readline()  # "listening on ..."
        # Warm up: a few small requests, so the baseline includes the runtime's threads.
        with connect() as s:
            for _ in range(10):
                s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
                read_response(s)
        time.sleep(a.settle)
        before = rss_kib(srv.pid)

        if a.size > 0:
            req = (f"POST {a.path} HTTP/1.1\r\nHost: b\r\nContent-Length: {a.size}\r\n\r\n"
                   ).encode() + b"x" * a.size
        else:
            req = f"GET {a.path} HTTP/1.1\r\nHost: b\r\n\r\n".encode()

        def one(s):
            s.sendall(req)
            return read_response(s)

        n = a.conns
        what = f"body {a.size} B to {a.path}" if a.size > 0 else f"GET {a.path}"
        print(f"{'Go ' if a.go else ''}{'HTTPS' if a.tls else 'HTTP'}: conns {n}, {what}, "
              f"procs {a.procs or os.cpu_count()}")
        print(f"VmRSS before      {before / 1024:8.1f} MiB")
        for r in range(a.rounds):
            with ThreadPoolExecutor(max_workers=min(n, 16)) as ex:
                socks = list(ex.map(lambda _: connect(), range(n)))
            with ThreadPoolExecutor(max_workers=min(n, 64)) as ex:
                statuses = list(ex.map(one, socks))
            bad = sum(1 for st in statuses if st != 200)
            time.sleep(a.settle)
            idle = rss_kib(srv.pid)
            for s in socks:
                s.close()
            time.sleep(a.settle)
            closed = rss_kib(srv.pid)
            tag = f"round {r + 1}: " if a.rounds > 1 else ""
            print(f"{tag}VmRSS idle        {idle / 1024:8.1f} MiB   "
                  f"(+{(idle - before) / n:.1f} KiB per idle connection)"
                  f"{', non-200 responses: %d' % bad if bad else ''}")
            print(f"{tag}VmRSS after close {closed / 1024:8.1f} MiB   "
                  f"(+{(closed - before) / 1024:.1f} MiB over before)")
    finally:
        tmp.cleanup()
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main())
