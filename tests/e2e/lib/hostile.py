#!/usr/bin/env python3
"""Hostile IKE/ESP senders for tests/e2e/hostile_input.sh (raw UDP and raw IP protocol 50).

  hostile.py CASE SRC DST [ARG]     send one case's datagrams from SRC to DST, print how many
  hostile.py capture-esp FILE       (in the receiver's namespace) save the next ESP packet seen
  hostile.py list                   the case names

Documentation addresses only; every datagram is bounded in size and count.
"""
import os
import socket
import struct
import sys
import time

ISAKMP_HDR = 28


def hdr(icookie, rcookie, np, exch, flags, msgid, length):
    return icookie + rcookie + struct.pack("!BBBBII", np, 0x10, exch, flags, msgid, length)


def payload(np, body, length=None):
    n = (4 + len(body)) & 0xFFFF if length is None else length
    return struct.pack("!BBH", np, 0, n) + body


def attr_tv(t, v):
    return struct.pack("!HH", 0x8000 | t, v)


def attr_tlv(t, value):
    return struct.pack("!HH", t, len(value) & 0xFFFF) + value


def mm1_sa(attrs=None):
    """An SA payload offering aes256-sha256-modp2048 with PSK (RFC 2409 App. A numbers)."""
    if attrs is None:
        attrs = (attr_tv(1, 7) + attr_tv(14, 256) + attr_tv(2, 4) + attr_tv(3, 1)
                 + attr_tv(4, 14) + attr_tv(11, 1) + attr_tlv(12, struct.pack("!I", 28800)))
    transform = struct.pack("!BBHBBH", 0, 0, (8 + len(attrs)) & 0xFFFF, 1, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, (8 + len(transform)) & 0xFFFF, 1, 1, 0, 1) + transform
    return struct.pack("!II", 1, 1) + proposal  # DOI IPsec, SIT_IDENTITY_ONLY


def mm1(icookie, attrs=None):
    sa = payload(0, mm1_sa(attrs))
    return hdr(icookie, bytes(8), 1, 2, 0, 0, ISAKMP_HDR + len(sa)) + sa


def cookie():
    return os.urandom(8)


def malformed():
    """Every length field wrong, payload chain loops and zero lengths, huge attributes,
    unknown payload types (critical and not)."""
    c = cookie()
    good = mm1(c)
    out = []
    out.append(good[:27])                                   # shorter than a header
    out.append(good[:ISAKMP_HDR] + b"")                     # header only, length says more
    b = bytearray(good); struct.pack_into("!I", b, 24, 0xFFFFFFFF); out.append(bytes(b))  # length huge
    b = bytearray(good); struct.pack_into("!I", b, 24, 20); out.append(bytes(b))          # length < header
    b = bytearray(good); struct.pack_into("!I", b, 24, len(good) - 7); out.append(bytes(b))
    b = bytearray(good); struct.pack_into("!H", b, 30, 0); out.append(bytes(b))           # SA payload length 0
    b = bytearray(good); struct.pack_into("!H", b, 30, 3); out.append(bytes(b))           # payload length < 4
    b = bytearray(good); struct.pack_into("!H", b, 30, 0xFFFF); out.append(bytes(b))      # payload past the end
    b = bytearray(good); b[28] = 1; out.append(bytes(b))                                  # chain: SA -> SA -> ...
    # A chain of 300 zero-body payloads that each point to the next, then a loop of length 4.
    chain = b"".join(payload(13, b"") for _ in range(300)) + payload(13, b"", 4)
    out.append(hdr(cookie(), bytes(8), 13, 2, 0, 0, ISAKMP_HDR + len(chain)) + chain)
    # Proposal / transform lengths wrong inside an otherwise fine SA payload.
    sa = bytearray(mm1_sa()); struct.pack_into("!H", sa, 10, 0xFFF0)
    p = payload(0, bytes(sa)); out.append(hdr(cookie(), bytes(8), 1, 2, 0, 0, ISAKMP_HDR + len(p)) + p)
    sa = bytearray(mm1_sa()); struct.pack_into("!H", sa, 18, 2)
    p = payload(0, bytes(sa)); out.append(hdr(cookie(), bytes(8), 1, 2, 0, 0, ISAKMP_HDR + len(p)) + p)
    # Huge attributes: a TLV life duration of 60000 bytes, and a TLV claiming 0xFFFF with 4.
    out.append(mm1(cookie(), attr_tv(1, 7) + attr_tlv(12, b"\xff" * 60000)))
    out.append(mm1(cookie(), attr_tv(1, 7) + struct.pack("!HH", 12, 0xFFFF) + b"\x01\x02\x03\x04"))
    # Hundreds of transforms / attributes.
    out.append(mm1(cookie(), attr_tv(1, 7) * 2000))
    # Unknown payload types: not critical and critical (RFC 2408 §3.2 has no critical bit for
    # IKEv1; the reserved byte set to 0x80 is what IKEv2 would call critical).
    sa_p = mm1_sa()
    unk = struct.pack("!BBH", 1, 0, 8) + b"ABCD"
    body = unk + payload(0, sa_p)
    out.append(hdr(cookie(), bytes(8), 200, 2, 0, 0, ISAKMP_HDR + len(body)) + body)
    unk_c = struct.pack("!BBH", 1, 0x80, 8) + b"ABCD"
    body = unk_c + payload(0, sa_p)
    out.append(hdr(cookie(), bytes(8), 200, 2, 0, 0, ISAKMP_HDR + len(body)) + body)
    # Unknown exchange type, major version 2, zero initiator cookie.
    b = bytearray(good); b[18] = 99; out.append(bytes(b))
    b = bytearray(good); b[17] = 0x20; out.append(bytes(b))
    b = bytearray(good); b[0:8] = bytes(8); out.append(bytes(b))
    # Encrypted flag on a message of no SA, and random bytes.
    b = bytearray(good); b[19] = 1; out.append(bytes(b))
    for n in (1, 4, 28, 100, 1500):
        out.append(os.urandom(n))
    return out


def send_udp(src, dst, port, msgs, sport=0, nonesp=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, sport))
    for m in msgs:
        if nonesp:
            m = bytes(4) + m
        try:
            s.sendto(m, (dst, port))
        except OSError:
            pass  # e.g. EMSGSIZE for an oversized case: still bounded, move on
    s.close()
    return len(msgs)


def esp_packet(spi, seq, n=64):
    return struct.pack("!II", spi, seq) + os.urandom(n)


def send_esp(src, dst, pkts):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
    s.bind((src, 0))
    for p in pkts:
        s.sendto(p, (dst, 0))
    s.close()
    return len(pkts)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    case = sys.argv[1]
    if case == "list":
        print("malformed malformed-4500 unknown-cookies invalid-cookie replay-mm1 mm1-flood "
              "esp-unknown-spi esp-bad-icv esp-replay udp-esp-unknown-spi")
        return
    if case == "capture-esp":
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
        s.settimeout(20)
        data = s.recv(65535)
        ihl = (data[0] & 0x0F) * 4
        with open(sys.argv[2], "wb") as f:
            f.write(data[ihl:])
        print(len(data) - ihl)
        return
    src, dst = sys.argv[2], sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    n = 0
    if case == "malformed":
        n = send_udp(src, dst, 500, malformed())
    elif case == "malformed-4500":
        n = send_udp(src, dst, 4500, malformed(), nonesp=True)
    elif case == "unknown-cookies":
        # A responder cookie set for an initiator cookie the daemon never saw.
        msgs = []
        for _ in range(20):
            m = bytearray(mm1(cookie())); m[8:16] = os.urandom(8); m[18] = 2
            msgs.append(bytes(m))
        n = send_udp(src, dst, 500, msgs)
    elif case == "invalid-cookie":
        # arg: "icookie-hex": a known initiator cookie with a wrong responder cookie.
        ic = bytes.fromhex(arg)
        msgs = []
        for _ in range(20):
            m = bytearray(mm1(ic)); m[8:16] = os.urandom(8)
            msgs.append(bytes(m))
        n = send_udp(src, dst, 500, msgs)
    elif case == "replay-mm1":
        m = mm1(cookie())
        n = send_udp(src, dst, 500, [m] * 5, sport=int(arg or 0))
    elif case == "mm1-flood":
        count = int(arg or 5000)
        socks = []
        sent = 0
        # Many source ports: a pool of sockets, each sending a share of fresh MM1s.
        for _ in range(50):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((src, 0))
            s.setblocking(False)
            socks.append(s)
        for i in range(count):
            try:
                socks[i % len(socks)].sendto(mm1(cookie()), (dst, 500))
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
            if i % 500 == 499:
                time.sleep(0.02)  # stay under the receiver's socket buffer
        for s in socks:
            s.close()
        n = sent
    elif case == "esp-unknown-spi":
        n = send_esp(src, dst, [esp_packet(0xDEAD0000 + i, 1) for i in range(50)])
    elif case == "esp-bad-icv":
        # arg: the receiver's inbound SPI (hex); sequence numbers far ahead of the window.
        spi = int(arg, 16)
        n = send_esp(src, dst, [esp_packet(spi, 1_000_000 + i, 96) for i in range(50)])
    elif case == "esp-replay":
        # arg: a file holding one ESP packet the receiver already accepted.
        with open(arg, "rb") as f:
            p = f.read()
        n = send_esp(src, dst, [p] * 10)
    elif case == "udp-esp-unknown-spi":
        n = send_udp(src, dst, 4500, [esp_packet(0xBEEF0000 + i, 1) for i in range(50)])
    else:
        sys.exit(f"unknown case {case}")
    print(n)


if __name__ == "__main__":
    main()
