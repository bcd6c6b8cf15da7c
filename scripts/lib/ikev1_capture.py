#!/usr/bin/env python3
"""Turn a strongSwan IKEv1 capture into test data for ferrovpn.

Reads a classic pcap (Ethernet, IPv4/UDP 500 and 4500) and the charon file logs of both peers
(written with `ike = 4`, `chd = 4`), and writes into OUTDIR:
  messages.txt   one line per ISAKMP datagram: <i2r|r2i> <src>:<sport> <dst>:<dport> <hex>
                 (the 4-byte non-ESP marker of port 4500 removed)
  decrypted.txt  one line per encrypted message: index, direction, exchange, message id, IV used,
                 plaintext payloads (hex), padding (hex)
  keys.txt       `name = hex` lines (see tests/data/README.md)
  summary.md     what is on the wire, message by message (included in the dataset's README)
Standard library only; AES/3DES-CBC through the `openssl enc` command.
"""
import argparse
import hashlib
import re
import struct
import subprocess
import sys

EXCH = {2: "ID_PROT", 4: "AGGRESSIVE", 5: "INFORMATIONAL", 32: "QUICK_MODE"}
PAYLOAD = {1: "SA", 2: "P", 3: "T", 4: "KE", 5: "ID", 6: "CERT", 7: "CR", 8: "HASH", 9: "SIG",
           10: "No", 11: "N", 12: "D", 13: "V", 14: "ATTR", 20: "NAT-D", 21: "NAT-OA",
           130: "NAT-D(draft)", 131: "NAT-OA(draft)", 132: "FRAG"}
NOTIFY = {24576: "RESPONDER_LIFETIME", 24577: "REPLAY_STATUS", 24578: "INITIAL_CONTACT",
          36136: "DPD_R_U_THERE", 36137: "DPD_R_U_THERE_ACK", 14: "NO_PROPOSAL_CHOSEN",
          24: "AUTHENTICATION_FAILED", 16384: "CONNECTED"}
VENDOR = {
    "09002689dfd6b712": "XAuth",
    "afcad71368a1f1c96b8696fc77570100": "DPD (RFC 3706)",
    "4048b7d56ebce88525e7de7f00d6c2d3": "FRAGMENTATION",
    "4a131c81070358455c5728f20e95452f": "NAT-T (RFC 3947)",
    "90cb80913ebb696e086381b5ec427b1f": "draft-ietf-ipsec-nat-t-ike-02\\n",
    "cd60464335df21f87cfdb2fc68b6a448": "draft-ietf-ipsec-nat-t-ike-02",
    "4485152d18b6bbcd0be8a8469579ddcc": "draft-ietf-ipsec-nat-t-ike-00",
    "882fe56d6fd20dbc2251613b2ebe5beb": "strongSwan",
    "12f5f28c457168a9702d9fe274cc0100": "Cisco Unity",
}
ID_TYPE = {1: "IPV4_ADDR", 2: "FQDN", 3: "USER_FQDN", 4: "IPV4_ADDR_SUBNET", 5: "IPV6_ADDR",
           6: "IPV6_ADDR_SUBNET", 7: "IPV4_ADDR_RANGE", 11: "KEY_ID"}


def read_pcap(path):
    """Yield (src, sport, dst, dport, udp_payload) for IPv4/UDP frames of a classic pcap."""
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        sys.exit(f"{path}: not a classic pcap file (write it with dumpcap -P)")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(end + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 101:
            ip = frame
        else:
            continue
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        udp = ip[ihl:total]
        sport, dport, ulen = struct.unpack(">HHH", udp[:6])
        src = ".".join(map(str, ip[12:16]))
        dst = ".".join(map(str, ip[16:20]))
        yield src, sport, dst, dport, udp[8:ulen]


LABEL_RE = re.compile(r"^\S+ (\d+)\[(\w+)\] (?:<[^>]*> )?(.*?) => (\d+) bytes @")
HEX_RE = re.compile(r"^\S+ (\d+)\[(\w+)\] (?:<[^>]*> )?\s*(\d+): (.*)$")
TEXT_RE = re.compile(r"^\S+ (\d+)\[(\w+)\] (?:<[^>]*> )?(.*)$")


def read_log(path):
    """Return (dumps, lines): dumps = [(label, bytes)] in log order, lines = plain message text."""
    dumps, lines, pending = [], [], {}
    for raw in open(path, errors="replace"):
        raw = raw.rstrip("\n")
        m = HEX_RE.match(raw)
        if m and m.group(1) in pending:
            label, need, buf = pending[m.group(1)]
            toks = m.group(4).split(" ")
            take = min(16, need - len(buf))
            buf += bytes(int(t, 16) for t in toks[:take])
            if len(buf) >= need:
                dumps.append((label, buf))
                del pending[m.group(1)]
            else:
                pending[m.group(1)] = (label, need, buf)
            continue
        m = LABEL_RE.match(raw)
        if m:
            n = int(m.group(4))
            if n == 0:
                dumps.append((m.group(3), b""))
            else:
                pending[m.group(1)] = (m.group(3), n, b"")
            continue
        m = TEXT_RE.match(raw)
        if m:
            lines.append(m.group(3))
    return dumps, lines


def cbc_decrypt(cipher, key, iv, data):
    out = subprocess.run(["openssl", "enc", "-d", "-" + cipher, "-K", key.hex(), "-iv", iv.hex(),
                          "-nopad"], input=data, capture_output=True, check=True)
    return out.stdout


def walk(first, body):
    """Payload chain -> ([(type, payload_body)], bytes consumed) or None when malformed."""
    out, off, t = [], 0, first
    while t != 0:
        if off + 4 > len(body) or body[off + 1] != 0:
            return None
        nxt, plen = body[off], struct.unpack(">H", body[off + 2:off + 4])[0]
        if plen < 4 or off + plen > len(body):
            return None
        out.append((t, body[off + 4:off + plen]))
        off += plen
        t = nxt
    return out, off


def attrs(data):
    """ISAKMP data attributes -> [(type, value)] (TV values as int, TLV as hex)."""
    out, off = [], 0
    while off + 4 <= len(data):
        t, v = struct.unpack(">HH", data[off:off + 4])
        if t & 0x8000:
            out.append((t & 0x7FFF, v))
            off += 4
        else:
            val = data[off + 4:off + 4 + v]
            out.append((t, int.from_bytes(val, "big") if len(val) <= 8 else val.hex()))
            off += 4 + v
    return out


def describe_sa(body):
    """SA payload body -> (text, first SPI)."""
    doi, sit = struct.unpack(">II", body[:8])
    parts, spi_first, off, nxt = [f"doi={doi} sit={sit}"], None, 8, 2
    while nxt == 2 and off + 8 <= len(body):
        nxt, _, plen = body[off], body[off + 1], struct.unpack(">H", body[off + 2:off + 4])[0]
        pno, proto, spisz, ntr = body[off + 4:off + 8]
        spi = body[off + 8:off + 8 + spisz]
        spi_first = spi_first if spi_first is not None else spi
        parts.append(f"P#{pno} proto={proto} spi={spi.hex() or '-'} transforms={ntr}")
        toff, tn = off + 8 + spisz, 3
        while tn == 3 and toff + 8 <= off + plen:
            tn, tlen = body[toff], struct.unpack(">H", body[toff + 2:toff + 4])[0]
            tno, tid = body[toff + 4], body[toff + 5]
            parts.append(f"  T#{tno} id={tid} attrs={attrs(body[toff + 8:toff + tlen])}")
            toff += tlen
        off += plen
    return "; ".join(parts), spi_first


def prf_expand(prf, key, seed, n):
    """RFC 2409 §5.5 / App. B: K1 = prf(key, seed), K2 = prf(key, K1 | seed), ..."""
    out, prev = b"", b""
    while len(out) < n:
        prev = prf(key, prev + seed)
        out += prev
    return out[:n]


def verify(k, qms, qm_order, infos, hname, bs, esp):
    """Recompute every derivable value from the recorded inputs; one line per check."""
    import hmac

    def prf(key, data):
        return hmac.new(key, data, hname).digest()

    b = bytes.fromhex
    res = []

    def check(name, got, want):
        if want is None:
            return
        res.append(f"- {name}: {'ok' if got == want else 'MISMATCH'}")

    g = lambda n: b(k[n]) if n in k else None  # noqa: E731
    need = ("psk", "ni_b", "nr_b", "g_xy", "cookie_i", "cookie_r", "g_xi", "g_xr")
    if any(n not in k for n in need):
        return ["- phase 1 inputs incomplete, nothing recomputed"]
    ci, cr, gxy = g("cookie_i"), g("cookie_r"), g("g_xy")
    skeyid = prf(g("psk"), g("ni_b") + g("nr_b"))
    check("SKEYID = prf(psk, Ni_b | Nr_b)", skeyid, g("skeyid"))
    sd = prf(skeyid, gxy + ci + cr + b"\0")
    sa = prf(skeyid, sd + gxy + ci + cr + b"\1")
    se = prf(skeyid, sa + gxy + ci + cr + b"\2")
    check("SKEYID_d", sd, g("skeyid_d"))
    check("SKEYID_a", sa, g("skeyid_a"))
    check("SKEYID_e", se, g("skeyid_e"))
    if "enc_key" in k:
        n = len(g("enc_key"))
        ka, kn = se, b""
        if n > len(se):  # RFC 2409 App. B: Ka = K1 | K2 ..., K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1)
            ka, kn = b"", b"\0"
            while len(ka) < n:
                kn = prf(se, kn)
                ka += kn
        ka = ka[:n]
        check("Ka (SKEYID_e, expanded if too short)", ka, g("enc_key"))
    check("initial IV = hash(g^xi | g^xr)", hashlib.new(hname, g("g_xi") + g("g_xr")).digest()[:bs],
          g("iv"))
    if "sai_b" in k and "idii_b" in k:
        check("HASH_I", prf(skeyid, g("g_xi") + g("g_xr") + ci + cr + g("sai_b") + g("idii_b")),
              g("hash_i"))
    if "sai_b" in k and "idir_b" in k:
        check("HASH_R", prf(skeyid, g("g_xr") + g("g_xi") + cr + ci + g("sai_b") + g("idir_b")),
              g("hash_r"))
    n = 0
    for mid in qm_order:
        q = qms[mid]
        if "spi_i" not in q:
            continue
        n += 1
        p = f"qm{n}_"
        m = struct.pack(">I", mid)
        # First message each way (a retransmitted QM1 is the same bytes again).
        qm1 = next((x for dd, x in q.get("after_hash", []) if dd == "i2r"), None)
        qm2 = next((x for dd, x in q.get("after_hash", []) if dd == "r2i"), None)
        if qm1 is not None:
            check(f"{p}hash1 = prf(SKEYID_a, M-ID | QM1 after HASH)", prf(sa, m + qm1),
                  g(p + "hash1"))
        if qm2 is not None:
            check(f"{p}hash2 = prf(SKEYID_a, M-ID | Ni_b | QM2 after HASH)",
                  prf(sa, m + g(p + "ni_b") + qm2), g(p + "hash2"))
        check(f"{p}hash3 = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)",
              prf(sa, b"\0" + m + g(p + "ni_b") + g(p + "nr_b")), g(p + "hash3"))
        pfs = g(p + "g_xy") or b""
        for dirn, spi in (("i2r", "spi_r"), ("r2i", "spi_i")):
            seed = pfs + b"\3" + g(p + spi) + g(p + "ni_b") + g(p + "nr_b")
            check(f"{p}seed_{dirn} = [g(qm)^xy |] 3 | {spi} | Ni_b | Nr_b", seed, g(p + "seed_" + dirn))
            e, i = g(p + "encr_" + dirn) or b"", g(p + "integ_" + dirn) or b""
            km = prf_expand(prf, sd, seed, len(e) + len(i))
            check(f"{p}encr_{dirn} | integ_{dirn} = KEYMAT", km, e + i)
    for mid, after, want in infos:
        check(f"INFORMATIONAL mid={mid} HASH = prf(SKEYID_a, M-ID | payloads after HASH)",
              prf(sa, struct.pack(">I", mid) + after), want)
    # ESP-in-UDP packets of every Quick Mode.
    sas = {}
    for i in range(1, n + 1):
        p = f"qm{i}_"
        for dirn, spi in (("i2r", "spi_r"), ("r2i", "spi_i")):
            if p + spi in k:
                sas[k[p + spi]] = (g(p + "encr_" + dirn) or b"", g(p + "integ_" + dirn) or b"")
    if n >= 1:
        res.extend(verify_esp(sas, esp))
    return res


def verify_esp(sas, esp):
    import hmac
    out, ok, bad, skipped = [], 0, 0, 0
    for _, _, _, _, _, pl in esp:
        if pl[:4].hex() not in sas:
            skipped += 1
            continue
        key, integ = sas[pl[:4].hex()]
        try:
            if not integ:  # AES-GCM-16 (RFC 4106): key | 4-byte salt, 8-byte IV, 16-byte ICV
                from cryptography.hazmat.primitives.ciphers.aead import AESGCM
                pt = AESGCM(key[:-4]).decrypt(key[-4:] + pl[8:16], pl[16:], pl[:8])
            else:  # AES-CBC + HMAC-SHA-256-128 (RFC 3602, RFC 4868)
                icv = hmac.new(integ, pl[:-16], "sha256").digest()[:16]
                if icv != pl[-16:]:
                    raise ValueError("ICV")
                pt = cbc_decrypt(f"aes-{len(key) * 8}-cbc", key, pl[8:24], pl[24:-16])
            if pt[-1] not in (4, 41):
                raise ValueError("next header")
            ok += 1
        except ImportError:
            return ["- ESP: python3-cryptography missing, ESP packets not checked"]
        except Exception:  # noqa: BLE001 - any failure is a mismatch
            bad += 1
    out.append(f"- ESP packets authenticated and decrypted with the Quick Mode keys (SPI spi_r "
               f"carries i2r, spi_i r2i): {ok} ok, {bad} failed, {skipped} with an unknown SPI")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--initiator-log", required=True)
    ap.add_argument("--responder-log", required=True)
    ap.add_argument("--initiator", required=True, help="initiator's outer IPv4 address")
    ap.add_argument("--psk", required=True)
    ap.add_argument("--cipher", required=True, help="openssl name: aes-256-cbc, des-ede3-cbc…")
    ap.add_argument("--hash", required=True, help="hashlib name of the negotiated hash")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bs = 8 if "des" in a.cipher else 16

    msgs = []
    for src, sport, dst, dport, pl in read_pcap(a.pcap):
        if 500 not in (sport, dport) and 4500 not in (sport, dport):
            continue
        if 4500 in (sport, dport):
            if pl == b"\xff":
                msgs.append(("keepalive", src, sport, dst, dport, pl))
                continue
            if pl[:4] != b"\0\0\0\0":
                msgs.append(("esp", src, sport, dst, dport, pl))
                continue
            pl = pl[4:]
        msgs.append(("ike", src, sport, dst, dport, pl))
    ike = [m for m in msgs if m[0] == "ike"]
    if not ike:
        sys.exit("no ISAKMP messages in the capture")

    idumps, ilines = read_log(a.initiator_log)
    rdumps, _ = read_log(a.responder_log)

    def dumps_named(dumps, label):
        return [v for l, v in dumps if l == label]

    keys = [("psk_text", a.psk), ("psk", a.psk.encode().hex())]
    first = ike[0][5]
    keys += [("cookie_i", first[:8].hex())]
    for m in ike:
        if m[5][8:16] != b"\0" * 8:
            keys.append(("cookie_r", m[5][8:16].hex()))
            break

    ka = dumps_named(idumps, "encryption key Ka")
    iv0 = dumps_named(idumps, "initial IV")
    ka = ka[0] if ka else None
    iv_next = iv0[0] if iv0 else None
    logged_ivs = [v for l, v in idumps + rdumps if l.startswith("next IV for MID") or l == "initial IV"]

    p1_last = None
    mid_iv = {}
    qms = {}  # mid -> dict
    infos = []  # (mid, payloads after HASH, HASH) of INFORMATIONAL exchanges
    summary, dec_lines, msg_lines, qm_order = [], [], [], []
    p1 = {}
    for idx, (_, src, sport, dst, dport, pl) in enumerate(ike, 1):
        d = "i2r" if src == a.initiator else "r2i"
        msg_lines.append(f"{d} {src}:{sport} {dst}:{dport} {pl.hex()}")
        if len(pl) < 28:
            summary.append(f"{idx}. {d} {sport}->{dport} short datagram ({len(pl)} bytes)")
            continue
        np_, ver, ex, fl = pl[16], pl[17], pl[18], pl[19]
        mid, length = struct.unpack(">II", pl[20:28])
        body = pl[28:]
        head = (f"{idx}. {d} {src}:{sport} -> {dst}:{dport} {EXCH.get(ex, ex)} mid={mid} "
                f"ver={ver:#04x} flags={fl:#04x}"
                f"{' (E' if fl & 1 else ' ('}{' C' if fl & 2 else ''}{' A' if fl & 4 else ''} ) "
                f"len={length} udp_payload={len(pl)}")
        iv_used, pad = None, b""
        if fl & 1:
            if ka is None:
                summary.append(head + " encrypted, no key in log")
                continue
            if mid == 0:
                cands = [iv_next]
            else:
                if mid not in mid_iv and p1_last is not None:
                    h = hashlib.new(a.hash, p1_last + struct.pack(">I", mid)).digest()[:bs]
                    mid_iv[mid] = h
                cands = [mid_iv.get(mid)]
            cands += logged_ivs
            plain = None
            for c in cands:
                if c is None:
                    continue
                pt = cbc_decrypt(a.cipher, ka, c, body[:len(body) - len(body) % bs])
                w = walk(np_, pt)
                if w is not None:
                    plain, iv_used = pt, c
                    break
            last = body[len(body) - len(body) % bs - bs:len(body) - len(body) % bs]
            if mid == 0:
                iv_next = last
                p1_last = last
            else:
                mid_iv[mid] = last
            if plain is None:
                summary.append(head + " could not decrypt")
                continue
            payloads, used = walk(np_, plain)
            pad = plain[used:]
            dec_lines.append(f"{idx} {d} {EXCH.get(ex, ex)} mid={mid} iv={iv_used.hex()} "
                             f"plaintext={plain[:used].hex()} padding={pad.hex()}")
        else:
            w = walk(np_, body)
            if w is None:
                summary.append(head + " malformed")
                continue
            payloads, used = w
            pad = body[used:]
        names = []
        details = []
        q = qms.setdefault(mid, {}) if ex == 32 else None
        if ex in (5, 32) and payloads and payloads[0][0] == 8:
            chain = plain if fl & 1 else body
            after = chain[4 + len(payloads[0][1]):used]
            if q is not None:
                q.setdefault("after_hash", []).append((d, after))
            else:
                infos.append((mid, after, payloads[0][1]))
        if ex == 32 and mid not in qm_order:
            qm_order.append(mid)
        for t, pb in payloads:
            n = PAYLOAD.get(t, str(t))
            if t == 11 and len(pb) >= 8:
                ntype = struct.unpack(">H", pb[6:8])[0]
                spisz = pb[5]
                n = f"N({NOTIFY.get(ntype, ntype)})"
                details.append(f"   {n}: protocol={pb[4]} spi={pb[8:8 + spisz].hex() or '-'} "
                               f"data={pb[8 + spisz:].hex() or '-'}"
                               + (f" attrs={attrs(pb[8 + spisz:])}" if ntype == 24576 else ""))
            elif t == 13:
                h = pb.hex()
                name = next((v for k, v in VENDOR.items() if h.startswith(k)), "unknown")
                details.append(f"   V: {h} ({name})")
            elif t == 1:
                txt, spi = describe_sa(pb)
                details.append(f"   SA: {txt}")
                if ex in (2, 4) and d == "i2r":
                    p1["sai_b"] = pb
                if q is not None and spi is not None:
                    q["spi_i" if d == "i2r" else "spi_r"] = spi
            elif t == 4:
                details.append(f"   KE: {len(pb)} bytes")
                if ex in (2, 4):
                    p1["g_xi" if d == "i2r" else "g_xr"] = pb
                elif q is not None:
                    q["g_xi" if d == "i2r" else "g_xr"] = pb
            elif t == 10:
                details.append(f"   No: {len(pb)} bytes")
                if ex in (2, 4):
                    p1["ni_b" if d == "i2r" else "nr_b"] = pb
                elif q is not None:
                    q["ni_b" if d == "i2r" else "nr_b"] = pb
            elif t == 5:
                idt = ID_TYPE.get(pb[0], pb[0])
                details.append(f"   ID: type={idt} proto={pb[1]} port={struct.unpack('>H', pb[2:4])[0]} "
                               f"data={pb[4:].hex()}")
                if ex in (2, 4):
                    p1["idii_b" if d == "i2r" else "idir_b"] = pb
                elif q is not None:
                    q.setdefault("id_" + d, []).append(pb)
            elif t == 8:
                details.append(f"   HASH: {pb.hex()}")
                if q is not None:
                    q.setdefault("hashes", []).append(pb)
            elif t in (20, 130):
                details.append(f"   {n}: {pb.hex()}")
                p1.setdefault("natd_" + d, []).append(pb)
            elif t == 12:
                details.append(f"   D: protocol={pb[4]} spi_size={pb[5]} "
                               f"n={struct.unpack('>H', pb[6:8])[0]} spis={pb[8:].hex()}")
            names.append(n)
        summary.append(head + f" [ {' '.join(names)} ]" +
                       (f" padding={len(pad)}:{pad.hex()}" if fl & 1 else
                        (f" trailing={pad.hex()}" if pad else "")))
        summary.extend(details)

    for k in ("ni_b", "nr_b", "g_xi", "g_xr", "sai_b", "idii_b", "idir_b"):
        if k in p1:
            keys.append((k, p1[k].hex()))
    secrets = dumps_named(idumps, "shared Diffie Hellman secret")
    if secrets:
        keys.append(("g_xy", secrets[0].hex()))
    for label, name in (("SKEYID", "skeyid"), ("SKEYID_d", "skeyid_d"), ("SKEYID_a", "skeyid_a"),
                        ("SKEYID_e", "skeyid_e"), ("encryption key Ka", "enc_key"),
                        ("initial IV", "iv"), ("HASH_I data", "hash_i_data"),
                        ("HASH_I", "hash_i"), ("HASH_R data", "hash_r_data"),
                        ("HASH_R", "hash_r")):
        v = dumps_named(idumps, label)
        if v:
            keys.append((name, v[0].hex()))

    # Quick Mode values: log order of the initiator matches the order of the exchanges.
    seeds_i = dumps_named(idumps, "initiator SA seed")
    seeds_r = dumps_named(idumps, "responder SA seed")
    encr_i = dumps_named(idumps, "encryption initiator key")
    encr_r = dumps_named(idumps, "encryption responder key")
    integ_i = dumps_named(idumps, "integrity initiator key")
    integ_r = dumps_named(idumps, "integrity responder key")
    h1, h2, h3 = (dumps_named(idumps, f"Hash({n})") for n in (1, 2, 3))
    qm_n = 0
    for mid in qm_order:
        q = qms[mid]
        if "spi_i" not in q:
            continue
        i = qm_n
        qm_n += 1
        p = f"qm{qm_n}_"
        keys.append((p + "mid", f"{mid:08x}"))
        for k in ("ni_b", "nr_b", "g_xi", "g_xr", "spi_i", "spi_r"):
            if k in q:
                keys.append((p + k, q[k].hex()))
        for k, lst in (("id_ci", q.get("id_i2r", [])[:1]), ("id_cr", q.get("id_i2r", [])[1:2])):
            if lst:
                keys.append((p + k, lst[0].hex()))
        # strongSwan does not log the PFS secret itself, but its SA seed starts with it
        # (RFC 2409 §5.5: KEYMAT = prf(SKEYID_d, g(qm)^xy | protocol | SPI | Ni_b | Nr_b)).
        if "g_xi" in q and i < len(seeds_i) and "ni_b" in q and "nr_b" in q:
            glen = len(seeds_i[i]) - 5 - len(q["ni_b"]) - len(q["nr_b"])
            if glen > 0:
                keys.append((p + "g_xy", seeds_i[i][:glen].hex()))
        # strongSwan's "initiator" SA seed/keys are those of the SA the initiator sends on, i.e.
        # the responder's SPI (seed = protocol | spi_r | Ni_b | Nr_b): name them by direction.
        for name, lst in (("hash1", h1), ("hash2", h2), ("hash3", h3), ("seed_i2r", seeds_i),
                          ("seed_r2i", seeds_r), ("encr_i2r", encr_i), ("encr_r2i", encr_r),
                          ("integ_i2r", integ_i), ("integ_r2i", integ_r)):
            if i < len(lst):
                keys.append((p + name, lst[i].hex()))

    checks = verify(dict(keys), qms, qm_order, infos, a.hash, bs,
                    [m for m in msgs if m[0] == "esp"])

    # Cross-check: every value both logs carry must agree.
    cross = []
    for label in ("shared Diffie Hellman secret", "SKEYID", "SKEYID_d", "SKEYID_a", "SKEYID_e",
                  "encryption key Ka", "initial IV", "HASH_I", "HASH_R", "Hash(1)", "Hash(2)",
                  "Hash(3)", "encryption initiator key", "encryption responder key",
                  "integrity initiator key", "integrity responder key"):
        iv_, rv_ = dumps_named(idumps, label), dumps_named(rdumps, label)
        if iv_ or rv_:
            cross.append(f"- `{label}`: initiator logged {len(iv_)}, responder {len(rv_)}, "
                         + ("equal" if iv_ == rv_ else "DIFFERENT"))

    # NAT-D: which hashes match HASH(CKY-I | CKY-R | IP | port) (RFC 3947 §3.2)?
    natd = []
    if "cookie_r" in dict(keys):
        ci, cr = bytes.fromhex(dict(keys)["cookie_i"]), bytes.fromhex(dict(keys)["cookie_r"])
        for d, lst in (("i2r", p1.get("natd_i2r", [])), ("r2i", p1.get("natd_r2i", []))):
            for n, h in enumerate(lst):
                match = "matches no address:port (faked)"
                for ip in ("192.0.2.1", "192.0.2.2"):
                    for port in (500, 4500):
                        x = hashlib.new(a.hash, ci + cr + bytes(map(int, ip.split("."))) +
                                        struct.pack(">H", port)).digest()
                        if x == h:
                            match = f"= HASH(CKY-I|CKY-R|{ip}|{port})"
                natd.append(f"- {d} NAT-D #{n + 1} ({'remote' if n == 0 else 'local'}): {match}")

    out = a.out
    open(f"{out}/messages.txt", "w").write("\n".join(msg_lines) + "\n")
    open(f"{out}/decrypted.txt", "w").write("\n".join(dec_lines) + "\n")
    open(f"{out}/keys.txt", "w").write("".join(f"{k} = {v}\n" for k, v in keys))
    esp = [m for m in msgs if m[0] == "esp"]
    kal = [m for m in msgs if m[0] == "keepalive"]
    with open(f"{out}/summary.md", "w") as f:
        f.write("### On the wire\n\n```\n" + "\n".join(summary) + "\n```\n\n")
        f.write(f"ESP-in-UDP packets: {len(esp)}; NAT-T keepalives: {len(kal)}; "
                f"ISAKMP datagrams: {len(ike)} "
                f"(port 500: {sum(1 for m in ike if 500 in (m[2], m[4]))}, "
                f"port 4500: {sum(1 for m in ike if 4500 in (m[2], m[4]))}).\n\n")
        if natd:
            f.write("### NAT-D payloads\n\n" + "\n".join(natd) + "\n\n")
        f.write("### Initiator and responder logs agree\n\n" + "\n".join(cross) + "\n\n")
        f.write("### Recomputed from the recorded inputs (RFC 2409, RFC 4106/4303)\n\n"
                + "\n".join(checks) + "\n\n")
        f.write("### What the initiator logged about vendor IDs, NAT and SAs\n\n```\n")
        for ln in ilines:
            if re.search(r"vendor ID|NAT|established|selected proposal|generating \S+ "
                         r"(request|response)|parsed \S+ (request|response)|received packet|"
                         r"sending packet|lifetime|rekeying|faking|Aggressive", ln):
                f.write(ln + "\n")
        f.write("```\n")


if __name__ == "__main__":
    main()
