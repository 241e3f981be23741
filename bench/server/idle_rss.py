#!/usr/bin/env python3
"""idle_rss.py: the HTTP example server's memory per idle keep-alive connection after large bodies.

Starts examples/http_server.cpp (colony_http_server), opens N keep-alive connections that each
POST a body of SIZE bytes (to /echo, or to / with --path=/) and read the whole response, then
leaves them idle, and reports the server's VmRSS (/proc/PID/status): before, with the
connections idle, and after they are closed.

  bench/server/idle_rss.py build/release/examples/colony_http_server
  bench/server/idle_rss.py BIN --conns=300 --size=1048576 --path=/echo --procs=2
"""
import argparse
import os
import socket
import subprocess
import sys
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
    a = ap.parse_args()

    addr = ("127.0.0.1", a.port)
    srv = subprocess.Popen(
        [a.server, f"--addr=127.0.0.1:{a.port}", f"--procs={a.procs}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        srv.stdout.readline()  # "listening on ..."
        # Warm up: a few small requests, so the baseline includes the runtime's threads.
        with socket.create_connection(addr) as s:
            for _ in range(10):
                s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
                read_response(s)
        time.sleep(a.settle)
        before = rss_kib(srv.pid)

        body = b"x" * a.size
        req = (f"POST {a.path} HTTP/1.1\r\nHost: b\r\nContent-Length: {a.size}\r\n\r\n").encode() + body

        def one(s):
            s.sendall(req)
            return read_response(s)

        n = a.conns
        print(f"conns {n}, body {a.size} B to {a.path}, procs {a.procs or os.cpu_count()}")
        print(f"VmRSS before      {before / 1024:8.1f} MiB")
        for r in range(a.rounds):
            socks = [socket.create_connection(addr) for _ in range(n)]
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
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main())
