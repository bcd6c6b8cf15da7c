#!/usr/bin/env python3
"""Configurations for the scale bed: N connections between one responder and N initiator
addresses, outer IPv6 (2001:db8::/32, enough distinct peers for any N), inner IPv6 /128 pairs,
one route-based TUN per connection. Documentation addresses only (RFC 3849).

  scale_conf.py ferrovpn SIDE N OUT --sock S --psk-file F [--ike P] [--daemon-extra TEXT]
                [--shared NAME] [--first F] [--log-level L]
  scale_conf.py swanctl N OUT --psk SECRET [--ike P]        (strongSwan responder)

SIDE is `responder` (waits) or `initiator` (starts every connection). With --shared NAME all
connections use one shared TUN device NAME (`[daemon] shared_interfaces`) and set no inner
address on it (the bed puts the inner addresses it pings on `lo`). --first F numbers the N
connections from F (default 1), so several initiators can split the peers.
"""
import argparse

RESPONDER = "2001:db8:ffff::1"


def peer(i):
    """Outer address of initiator connection i (1-based)."""
    return f"2001:db8:ffff::1:{i:x}"


def inner_init(i):
    return f"2001:db8:a::{i:x}"


def inner_resp(i):
    return f"2001:db8:b::{i:x}"


def ferrovpn(a):
    init = a.side == "initiator"
    out = [
        "[daemon]",
        f'control_socket = "{a.sock}"',
        f'log_level = "{a.log_level}"',
        "workers = 1",
        'retransmit_timeout = "2s"',
        a.daemon_extra or "",
        f'shared_interfaces = ["{a.shared}"]' if a.shared else "",
        "",
    ]
    for i in range(a.first, a.first + a.n):
        here, there = (peer(i), RESPONDER) if init else (RESPONDER, peer(i))
        lin, rin = (inner_init(i), inner_resp(i)) if init else (inner_resp(i), inner_init(i))
        out += [
            "[[connection]]",
            f'name = "c{i}"',
            f'local_addr = "{here}"',
            f'remote_addr = "{there}"',
            f'psk_file = "{a.psk_file}"',
            f'ike = "{a.ike}"',
            'esp = "aes128gcm16"',
            f'start = "{"initiate" if init else "respond"}"',
            "[connection.route_based]",
            f'interface = "{a.shared or f"{a.prefix}{i}"}"',
            f'local_ts = "{lin}/128"',
            f'remote_ts = "{rin}/128"',
            "" if a.shared else f'address = "{lin}/128"',
            f'routes = ["{rin}/128"]',
            "mtu = 1400" if a.fixed_mtu else "",
            "",
        ]
    return "\n".join(out)


def swanctl(a):
    out = ["connections {"]
    for i in range(1, a.n + 1):
        out += [
            f"    c{i} {{",
            "        version = 1",
            f"        local_addrs = {RESPONDER}",
            f"        remote_addrs = {peer(i)}",
            f"        proposals = {a.ike}",
            f"        local {{ auth = psk\n            id = {RESPONDER} }}",
            f"        remote {{ auth = psk\n            id = {peer(i)} }}",
            "        children {",
            f"            c{i} {{ local_ts = {inner_resp(i)}/128\n                remote_ts = {inner_init(i)}/128",
            "                esp_proposals = aes128gcm16",
            "                start_action = none }",
            "        }",
            "    }",
        ]
    out += ["}", "secrets {", "    ike-all {", f'        secret = "{a.psk}"']
    out += [f"        id-r{i} = {peer(i)}" for i in range(1, a.n + 1)]
    out += [f"        id-l = {RESPONDER}", "    }", "}"]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["ferrovpn", "swanctl"])
    p.add_argument("rest", nargs="+")
    p.add_argument("--sock")
    p.add_argument("--psk-file")
    p.add_argument("--psk")
    p.add_argument("--ike", default="aes128-sha256-modp2048")
    p.add_argument("--daemon-extra", default="")
    p.add_argument("--prefix", default="sc")
    p.add_argument("--fixed-mtu", action="store_true")
    p.add_argument("--shared", default="")
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--log-level", default="info")
    a = p.parse_args()
    if a.kind == "ferrovpn":
        a.side, n, out = a.rest
        a.n = int(n)
        text = ferrovpn(a)
    else:
        n, out = a.rest
        a.n = int(n)
        text = swanctl(a)
    with open(out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
