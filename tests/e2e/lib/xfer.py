#!/usr/bin/env python3
"""TCP transfer with an end-to-end checksum, for the namespace tests.

  xfer.py serve ADDR PORT READY_FILE   accept one connection, read to EOF, answer "<bytes> <sha256>"
  xfer.py send SRC DST PORT FILE       send FILE from SRC to DST:PORT, print the server's answer

The receiver hashes what actually arrived, the sender compares it with the file it sent.
"""
import hashlib
import socket
import sys

TIMEOUT = 60


def serve(addr, port, ready):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    s.settimeout(TIMEOUT)
    with open(ready, "w") as f:
        f.write("ready\n")
    c, _ = s.accept()
    c.settimeout(TIMEOUT)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    answer = f"{n} {h.hexdigest()}"
    c.sendall(answer.encode() + b"\n")
    c.close()
    print(answer)


def send(src, dst, port, path):
    c = socket.create_connection((dst, int(port)), timeout=TIMEOUT, source_address=(src, 0))
    with open(path, "rb") as f:
        while True:
            d = f.read(1 << 16)
            if not d:
                break
            c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        d = c.recv(4096)
        if not d:
            break
        answer += d
    print(answer.decode().strip())


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "send":
        send(*sys.argv[2:])
    else:
        sys.exit(__doc__)
