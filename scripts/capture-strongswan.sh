#!/usr/bin/env bash
# Records strongSwan ⇄ strongSwan IKEv1 PSK exchanges as test data for ferrovpn:
# two charons (kernel-libipsec) in two network namespaces, a pcap of the veth between them, a few
# pings through the tunnel, and every key strongSwan logs with `ike = 4`, `chd = 4`.
# Output: tests/data/strongswan/<scenario>/ (see tests/data/README.md).
#
#   scripts/capture-strongswan.sh            # all scenarios
#   scripts/capture-strongswan.sh NAME...    # only these
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT/scripts/lib/netns.sh"

require_root_or_skip "capture-strongswan.sh needs network namespaces"
require_cmd_or_skip /usr/lib/ipsec/charon swanctl dumpcap openssl python3 ip

PSK="ferrovpn-test-psk"
OUT_BASE="$ROOT/tests/data/strongswan"
LOG_LEVELS='default = 1
            ike = 4
            chd = 4
            cfg = 2
            net = 2
            enc = 1
            knl = 1
            esp = 1'

# name | aggressive | ike proposal | esp proposal | openssl cipher | hashlib hash
SCENARIOS=(
    "mm-psk-aes256-sha256-modp2048_esp-aes128gcm16|no|aes256-sha256-modp2048|aes128gcm16|aes-256-cbc|sha256"
    "mm-psk-aes128-sha1-modp2048_esp-aes128-sha256-pfs-modp2048|no|aes128-sha1-modp2048|aes128-sha256-modp2048|aes-128-cbc|sha1"
    "am-psk-aes256-sha256-modp2048_esp-aes128gcm16|yes|aes256-sha256-modp2048|aes128gcm16|aes-256-cbc|sha256"
)

swanctl_conf() { # local remote local_ts remote_ts aggressive ike esp
    cat <<EOF
connections {
    fv {
        version = 1
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

run_scenario() {
    local name="$1" aggr="$2" ike="$3" esp="$4" cipher="$5" hash="$6"
    local out="$OUT_BASE/$name" ss_i ss_r sw_i sw_r extra_r=""
    fv_log "scenario $name"
    FV_NO_IPV6=1 fv_two_ns
    fv_add_inner "$FV_NS_A" 198.51.100.1/32
    fv_add_inner "$FV_NS_B" 203.0.113.1/32

    if [ "$aggr" = yes ]; then
        extra_r="    i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
    fi
    ss_i="$(fv_strongswan_conf initiator "" "$LOG_LEVELS")"
    ss_r="$(fv_strongswan_conf responder "$extra_r" "$LOG_LEVELS")"
    sw_i="$(swanctl_conf 192.0.2.1 192.0.2.2 198.51.100.1/32 203.0.113.1/32 "$aggr" "$ike" "$esp")"
    sw_r="$(swanctl_conf 192.0.2.2 192.0.2.1 203.0.113.1/32 198.51.100.1/32 "$aggr" "$ike" "$esp")"
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
    python3 "$ROOT/scripts/lib/ikev1_capture.py" --pcap "$out/capture.pcap" \
        --initiator-log "$out/charon-initiator.log" --responder-log "$out/charon-responder.log" \
        --initiator 192.0.2.1 --psk "$PSK" --cipher "$cipher" --hash "$hash" --out "$out"

    {
        echo "# strongSwan ⇄ strongSwan: $name"
        echo
        echo "Recorded $(date -u +%Y-%m-%dT%H:%MZ) by \`scripts/capture-strongswan.sh $name\` with"
        echo "strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon)"
        echo "(Debian, kernel-libipsec userspace ESP) in two network namespaces: initiator 192.0.2.1"
        echo "(inner 198.51.100.1/32 on lo), responder 192.0.2.2 (inner 203.0.113.1/32 on lo), joined by"
        echo "a veth pair captured with \`dumpcap -P\` on the initiator's end. Sequence: both charons"
        echo "start, \`swanctl --load-all\`, \`swanctl --initiate --child fv\` on the initiator,"
        echo "\`ping -c 3 -I 198.51.100.1 203.0.113.1\`, then the initiator's charon is stopped (it sends"
        echo "DELETEs), then the responder's. PSK: \`$PSK\`."
        echo
        echo "Files: \`capture.pcap\`, \`messages.txt\`, \`decrypted.txt\`, \`keys.txt\` (formats in"
        echo "tests/data/README.md), \`charon-initiator.log\`, \`charon-responder.log\`, \`list-sas.txt\`."
        echo
        echo "## Initiator strongswan.conf"
        echo
        echo '```'
        cat "/etc/netns/$FV_NS_A/strongswan.conf" | sed "s#$FV_TMP#/tmp/fvXXXX#g"
        echo '```'
        echo
        echo "The responder's is the same with filelog name \`responder\`$([ -n "$extra_r" ] && echo " and \`charon.i_dont_care_about_security_and_use_aggressive_mode_psk = yes\`")."
        echo
        echo "## Initiator swanctl.conf"
        echo
        echo '```'
        cat "/etc/netns/$FV_NS_A/swanctl/swanctl.conf"
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
        if [ -f "$ROOT/scripts/lib/capture-notes/common.md" ]; then
            cat "$ROOT/scripts/lib/capture-notes/common.md"
        fi
    } >"$out/README.md"
    rm -f "$out/summary.md"

    # Tear this scenario's test bed down before the next one.
    fv_cleanup_scenario
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

fv_init
want=("$@")
for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name aggr ike esp cipher hash <<<"$s"
    if [ "${#want[@]}" -gt 0 ] && ! printf '%s\n' "${want[@]}" | grep -qx "$name"; then
        continue
    fi
    run_scenario "$name" "$aggr" "$ike" "$esp" "$cipher" "$hash"
done
