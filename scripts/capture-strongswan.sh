#!/usr/bin/env bash
# Records strongSwan ⇄ strongSwan IKEv1 PSK exchanges as test data for ferrovpn:
# two charons (kernel-libipsec) in two network namespaces, a pcap of the veth between them, a few
# pings through the tunnel, and every key strongSwan logs with `ike = 4`, `chd = 4`.
# Output: tests/data/strongswan/<scenario>/ (see tests/data/README.md).
#
#   scripts/capture-strongswan.sh                 # record and process all scenarios
#   scripts/capture-strongswan.sh NAME...         # only these
#   scripts/capture-strongswan.sh --reprocess [NAME...]   # rebuild keys/messages/README only
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/netns.sh"

require_root_or_skip "capture-strongswan.sh needs network namespaces"
require_cmd_or_skip /usr/lib/ipsec/charon swanctl dumpcap openssl python3 ip

PSK="ferrovpn-test-psk"
OUT_BASE="${CAPTURE_OUT:-$ROOT/tests/data/strongswan}"  # CAPTURE_OUT: record elsewhere (trial runs)
LOG_LEVELS='default = 1
            ike = 4
            chd = 4
            cfg = 2
            net = 2
            enc = 1
            knl = 1
            esp = 1'

# name | aggressive | ike proposal | esp proposal | openssl cipher | hashlib hash | actions
# actions: "rekey" = rekey the CHILD_SA after the pings and ping again; "dpd" = dpd_delay 2s and
# 5 idle seconds (R-U-THERE / ACK).
SCENARIOS=(
    "mm-psk-aes256-sha256-modp2048_esp-aes128gcm16|no|aes256-sha256-modp2048|aes128gcm16|aes-256-cbc|sha256|"
    "mm-psk-aes128-sha1-modp2048_esp-aes128-sha256-pfs-modp2048|no|aes128-sha1-modp2048|aes128-sha256-modp2048|aes-128-cbc|sha1|"
    "am-psk-aes256-sha256-modp2048_esp-aes128gcm16|yes|aes256-sha256-modp2048|aes128gcm16|aes-256-cbc|sha256|"
    "mm-psk-aes256-sha384-ecp384_esp-aes256gcm16-pfs-ecp384|no|aes256-sha384-ecp384|aes256gcm16-ecp384|aes-256-cbc|sha384|"
    "mm-psk-aes128-sha256-curve25519_esp-aes128gcm16|no|aes128-sha256-curve25519|aes128gcm16|aes-128-cbc|sha256|"
    "mm-psk-3des-md5-modp1024_esp-aes128-sha256|no|3des-md5-modp1024|aes128-sha256|des-ede3-cbc|md5|"
    "mm-psk-aes256-sha256-modp2048_esp-aes128gcm16-rekey-dpd|no|aes256-sha256-modp2048|aes128gcm16|aes-256-cbc|sha256|rekey,dpd"
)

swanctl_conf() { # local remote local_ts remote_ts aggressive ike esp [dpd_delay]
    cat <<EOF
connections {
    fv {
        version = 1${8:+
        dpd_delay = $8}
        aggressive = $5
        local_addrs = $1
        remote_addrs = $2
        proposals = $6
        local {
            auth = psk
            id = $1
        }
        remote {
            auth = psk
            id = $2
        }
        children {
            fv {
                local_ts = $3
                remote_ts = $4
                esp_proposals = $7
                start_action = none
            }
        }
    }
}
secrets {
    ike-fv {
        id-a = 192.0.2.1
        id-b = 192.0.2.2
        secret = "$PSK"
    }
}
EOF
}

wait_for_text() { # file text seconds
    local i
    for i in $(seq 1 $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    fv_log "timeout waiting for '$2' in $1"
    return 1
}

# The configuration texts of a scenario: sets ss_i ss_r sw_i sw_r extra_r.
scenario_confs() { # aggressive ike esp actions
    local dpd=""
    extra_r=""
    if [ "$1" = yes ]; then
        extra_r="    i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    fi
    case ",$4," in *,dpd,*) dpd=2s ;; esac
    ss_i="$(fv_strongswan_conf initiator "" "$LOG_LEVELS")"
    ss_r="$(fv_strongswan_conf responder "$extra_r" "$LOG_LEVELS")"
    sw_i="$(swanctl_conf 192.0.2.1 192.0.2.2 198.51.100.1/32 203.0.113.1/32 "$1" "$2" "$3" "$dpd")"
    sw_r="$(swanctl_conf 192.0.2.2 192.0.2.1 203.0.113.1/32 198.51.100.1/32 "$1" "$2" "$3" "$dpd")"
}

# Run one scenario in fresh namespaces; leaves capture.pcap, charon-*.log, list-sas.txt in $out.
record_scenario() {
    local name="$1" aggr="$2" ike="$3" esp="$4" actions="$7"
    local out="$OUT_BASE/$name" ss_i ss_r sw_i sw_r extra_r
    fv_log "scenario $name: recording"
    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_A" 198.51.100.1/32
    fv_add_inner "$FV_NS_B" 203.0.113.1/32
    scenario_confs "$aggr" "$ike" "$esp" "$actions"
    fv_charon_config "$FV_NS_A" "$ss_i" "$sw_i"
    fv_charon_config "$FV_NS_B" "$ss_r" "$sw_r"

    local pcap="$FV_TMP/$name.pcap" caplog="$FV_TMP/$name.dumpcap.log" cap_pid
    FV_SPAWN_LOG="$caplog" fv_spawn "$FV_NS_A" dumpcap -q -P -i "$FV_IF_A" -w "$pcap"
    cap_pid="$FV_LAST_PID"
    wait_for_text "$caplog" "Capturing on" 10 || { cat "$caplog" >&2; return 1; }

    fv_charon_start "$FV_NS_A"
    fv_charon_start "$FV_NS_B"
    fv_charon_wait "$FV_NS_A"
    fv_charon_wait "$FV_NS_B"
    fv_charon_load "$FV_NS_B" >/dev/null
    fv_charon_load "$FV_NS_A" >/dev/null
    fv_swanctl "$FV_NS_A" --initiate --child fv >"$FV_TMP/$name.initiate.log"
    fv_exec "$FV_NS_A" ping -c 3 -i 0.2 -W 2 -I 198.51.100.1 203.0.113.1 >"$FV_TMP/$name.ping.log"
    case ",$actions," in *,rekey,*)
        fv_swanctl "$FV_NS_A" --rekey --child fv >>"$FV_TMP/$name.initiate.log"
        sleep 1
        fv_exec "$FV_NS_A" ping -c 3 -i 0.2 -W 2 -I 198.51.100.1 203.0.113.1 >>"$FV_TMP/$name.ping.log"
        ;;
    esac
    case ",$actions," in *,dpd,*) sleep 5 ;; esac
    fv_swanctl "$FV_NS_A" --list-sas >"$FV_TMP/$name.list-sas.txt"
    # Stop the initiator first: its DELETE messages end up in the capture too.
    fv_charon_stop "$FV_NS_A"
    sleep 0.5
    fv_charon_stop "$FV_NS_B"
    sleep 0.3
    fv_stop "$cap_pid"

    rm -rf "$out"
    mkdir -p "$out"
    cp "$pcap" "$out/capture.pcap"
    cp "$(fv_charon_dir "$FV_NS_A")/charon.log" "$out/charon-initiator.log"
    cp "$(fv_charon_dir "$FV_NS_B")/charon.log" "$out/charon-responder.log"
    cp "$FV_TMP/$name.list-sas.txt" "$out/list-sas.txt"
    fv_cleanup_scenario
}

# (Re)build messages.txt, decrypted.txt, keys.txt and README.md from a recorded scenario.
process_scenario() {
    local name="$1" aggr="$2" ike="$3" esp="$4" cipher="$5" hash="$6" actions="$7"
    local out="$OUT_BASE/$name" ss_i ss_r sw_i sw_r extra_r when
    [ -f "$out/capture.pcap" ] || { fv_log "$out/capture.pcap missing: record it first"; return 1; }
    scenario_confs "$aggr" "$ike" "$esp" "$actions"
    python3 "$ROOT/scripts/lib/ikev1_capture.py" --pcap "$out/capture.pcap" \
        --initiator-log "$out/charon-initiator.log" --responder-log "$out/charon-responder.log" \
        --initiator 192.0.2.1 --psk "$PSK" --cipher "$cipher" --hash "$hash" --out "$out"
    when="$(python3 -c 'import struct,sys,time; d=open(sys.argv[1],"rb").read(32); print(time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(struct.unpack("<I", d[24:28])[0])))' "$out/capture.pcap")"
    {
        echo "# strongSwan ⇄ strongSwan: $name"
        echo
        echo "Recorded $when by \`scripts/capture-strongswan.sh $name\` with strongSwan"
        echo "$(grep -o 'strongSwan [0-9.]*' "$out/charon-initiator.log" | head -1 | cut -d' ' -f2) (Debian, kernel-libipsec userspace ESP) in two network namespaces:"
        echo "initiator 192.0.2.1 (inner 198.51.100.1/32 on lo), responder 192.0.2.2 (inner"
        echo "203.0.113.1/32 on lo), joined by a veth pair captured with \`dumpcap -P\` on the initiator's"
        echo "end. Sequence: both charons start, \`swanctl --load-all\`, \`swanctl --initiate --child fv\`"
        echo "on the initiator, \`ping -c 3 -I 198.51.100.1 203.0.113.1\`$(case ",$actions," in *,rekey,*) echo ", \`swanctl --rekey --child fv\`, 3 more pings" ;; esac)$(case ",$actions," in *,dpd,*) echo ", 5 s idle" ;; esac), then the"
        echo "initiator's charon is stopped (it sends DELETEs), then the responder's. PSK: \`$PSK\`."
        echo
        echo "Files: \`capture.pcap\`, \`messages.txt\`, \`decrypted.txt\`, \`keys.txt\` (formats in"
        echo "tests/data/README.md), \`charon-initiator.log\`, \`charon-responder.log\`, \`list-sas.txt\`."
        echo "\`scripts/capture-strongswan.sh --reprocess $name\` rebuilds all but the recordings."
        echo
        echo "## Initiator strongswan.conf"
        echo
        echo '```'
        printf '%s\n' "$ss_i" | sed 's#@VICI@#unix:///tmp/fvXXXX/NS/charon.vici#; s#@DIR@#/tmp/fvXXXX/NS#'
        echo '```'
        echo
        echo "The responder's is the same with filelog name \`responder\`$([ -n "$extra_r" ] && echo " and \`charon.i_dont_care_about_security_and_use_aggressive_mode_psk = yes\`")."
        echo
        echo "## Initiator swanctl.conf"
        echo
        echo '```'
        printf '%s\n' "$sw_i"
        echo '```'
        echo
        echo "The responder's swaps local/remote addresses, ids and traffic selectors."
        echo
        cat "$out/summary.md"
        echo
        echo "## Notes"
        echo
        if [ -f "$ROOT/scripts/lib/capture-notes/$name.md" ]; then
            cat "$ROOT/scripts/lib/capture-notes/$name.md"
        fi
        cat "$ROOT/scripts/lib/capture-notes/common.md"
    } >"$out/README.md"
    rm -f "$out/summary.md"
    if grep -q -E 'MISMATCH|could not decrypt|malformed' "$out/README.md"; then
        fv_log "scenario $name: some recomputed values do not match, see $out/README.md"
        return 1
    fi
    fv_log "scenario $name: $(wc -l <"$out/messages.txt") ISAKMP messages, $(wc -l <"$out/keys.txt") keys"
}

# Delete the namespaces of one scenario but keep the trap and temp dir for the next.
fv_cleanup_scenario() {
    local ns
    for ns in "$FV_NS_A" "$FV_NS_B"; do
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns" "$(fv_charon_dir "$ns")"
    done
    FV_NAMESPACES=()
}

reprocess=no
if [ "${1:-}" = --reprocess ]; then
    reprocess=yes
    shift
fi
fv_init
want=("$@")
for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name aggr ike esp cipher hash actions <<<"$s"
    if [ "${#want[@]}" -gt 0 ] && ! grep -qx -- "$name" <<<"$(printf '%s\n' "${want[@]}")"; then
        continue
    fi
    if [ "$reprocess" = no ]; then
        record_scenario "$name" "$aggr" "$ike" "$esp" "$cipher" "$hash" "$actions"
    fi
    process_scenario "$name" "$aggr" "$ike" "$esp" "$cipher" "$hash" "$actions"
done
