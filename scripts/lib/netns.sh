# shellcheck shell=bash
# Network-namespace test bed for ferrovpn's end-to-end tests, demos and strongSwan captures.
# Source it from a bash script (works under `set -euo pipefail`):
#
#   . scripts/lib/netns.sh
#   require_root_or_skip "needs network namespaces"
#   fv_init                                  # unique id, temp dir, cleanup trap
#   fv_two_ns                                # $FV_NS_A/$FV_NS_B, veth $FV_IF_A/$FV_IF_B,
#                                            # 192.0.2.1/24 and 192.0.2.2/24
#   fv_add_inner "$FV_NS_A" 198.51.100.1/32  # inner address on lo
#   fv_spawn "$FV_NS_A" some-daemon --flag   # runs in the background, PID in $FV_LAST_PID
#   fv_charon_config "$FV_NS_A" "$strongswan_conf" "$swanctl_conf"
#   fv_charon_start "$FV_NS_A"; fv_charon_wait "$FV_NS_A"
#   fv_swanctl "$FV_NS_A" --load-all
#
# Everything this library starts is killed by PID and every namespace it made is deleted on
# EXIT, INT and TERM. Only documentation addresses are used (RFC 5737).

FV_CHARON_BIN="${FV_CHARON_BIN:-/usr/lib/ipsec/charon}"

# Exit 0 with a reason when not root (a skip); with CI=true a missing root is a failure.
require_root_or_skip() {
    local why="${1:-this test needs root (network namespaces)}"
    if [ "$(id -u)" = 0 ]; then
        return 0
    fi
    if [ "${CI:-}" = true ]; then
        printf '\n!!!!! ERROR: %s, but not running as root and CI=true !!!!!\n\n' "$why" >&2
        exit 1
    fi
    printf 'SKIP: %s (not root)\n' "$why" >&2
    exit 0
}

# Exit like require_root_or_skip when a command is missing.
require_cmd_or_skip() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1 && [ ! -x "$c" ]; then
            if [ "${CI:-}" = true ]; then
                printf '\n!!!!! ERROR: required command %s missing and CI=true (run scripts/install-deps.sh) !!!!!\n\n' "$c" >&2
                exit 1
            fi
            printf 'SKIP: required command %s missing (run scripts/install-deps.sh)\n' "$c" >&2
            exit 0
        fi
    done
}

fv_log() { printf '[%s] %s\n' "${FV_ID:-fv}" "$*" >&2; }

# Unique short id ("fv" + pid in hex + random byte: at most 10 characters, so "<id>-a" fits the
# 15-character interface name limit), a private temp dir and the cleanup trap.
fv_init() {
    FV_ID="fv$(printf '%x%02x' "$$" "$((RANDOM % 256))")"
    FV_TMP="$(mktemp -d "/tmp/${FV_ID}.XXXXXX")"
    FV_NAMESPACES=()
    FV_PIDS=()
    FV_CLEANUP_HOOKS=()
    FV_LAST_PID=
    declare -gA FV_CHARON_PID=()
    trap 'fv_cleanup' EXIT
    trap 'fv_cleanup; trap - INT; exit 130' INT
    trap 'fv_cleanup; trap - TERM; exit 143' TERM
}

# Run a command (string, eval'ed) at cleanup, before processes are killed.
fv_on_cleanup() { FV_CLEANUP_HOOKS+=("$1"); }

fv_cleanup() {
    local rc=$? h pid ns i
    set +e
    for h in "${FV_CLEANUP_HOOKS[@]}"; do eval "$h"; done
    FV_CLEANUP_HOOKS=()
    for pid in "${FV_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${FV_PIDS[@]}"; do
        for ((i = 0; i < 30; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null
    done
    FV_PIDS=()
    for ns in "${FV_NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    FV_NAMESPACES=()
    if [ -n "${FV_TMP:-}" ] && [ -d "$FV_TMP" ] && [ -z "${FV_KEEP_TMP:-}" ]; then
        rm -rf "$FV_TMP"
    fi
    return "$rc"
}

# fv_ns_create NAME: a namespace with loopback up, deleted at cleanup. With FV_NO_IPV6=1 IPv6 is
# disabled in it (no router solicitations or MLD reports in captures).
fv_ns_create() {
    local ns="$1"
    ip netns add "$ns"
    FV_NAMESPACES+=("$ns")
    if [ "${FV_NO_IPV6:-0}" = 1 ]; then
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv6.conf.default.disable_ipv6=1
    fi
    ip -n "$ns" link set lo up
}

# fv_scale_bed R I SUFFIX N: the bed of the scale measurements (scripts/scale.sh and
# tests/e2e/scale.sh). Namespaces R (responder, 2001:db8:ffff::1) and I (N peer addresses
# 2001:db8:ffff::1:<i>, no DAD, usable at once) joined by the veth ${FV_ID}-r$SUFFIX ⇄
# ${FV_ID}-i$SUFFIX. R reaches the peers through one neighbour (::2 on I) rather than one
# neighbour entry per peer: the kernel's neighbour table is shared by all namespaces and holds
# 1024 entries by default (gc_thresh3); beyond that sends fail with EINVAL.
fv_scale_bed() {
    local r="$1" peers="$2" rv="${FV_ID}-r$3" iv="${FV_ID}-i$3" n="$4" k ns
    fv_ns_create "$r"
    fv_ns_create "$peers"
    for ns in "$r" "$peers"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    ip link add "$rv" netns "$r" type veth peer name "$iv" netns "$peers"
    ip -n "$r" addr add 2001:db8:ffff::1/64 dev "$rv" nodad
    for ((k = 1; k <= n; k++)); do
        printf 'addr add 2001:db8:ffff::1:%x/64 dev %s nodad\n' "$k" "$iv"
    done | ip -n "$peers" -batch -
    ip -n "$r" link set "$rv" up
    ip -n "$peers" link set "$iv" up
    ip -n "$peers" addr add 2001:db8:ffff::2/64 dev "$iv" nodad
    ip -n "$r" -6 route add 2001:db8:ffff::1:0/112 via 2001:db8:ffff::2 dev "$rv"
}

# fv_veth NS1 IF1 ADDR1/LEN NS2 IF2 ADDR2/LEN: a veth pair between two namespaces, both ends up.
fv_veth() {
    local ns1="$1" if1="$2" a1="$3" ns2="$4" if2="$5" a2="$6"
    ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2"
    ip -n "$ns1" addr add "$a1" dev "$if1"
    ip -n "$ns2" addr add "$a2" dev "$if2"
    ip -n "$ns1" link set "$if1" up
    ip -n "$ns2" link set "$if2" up
}

# Two namespaces $FV_NS_A and $FV_NS_B joined by veth $FV_IF_A (192.0.2.1/24) ⇄
# $FV_IF_B (192.0.2.2/24). Override the addresses with FV_OUTER_A / FV_OUTER_B.
fv_two_ns() {
    FV_NS_A="${FV_ID}a"
    FV_NS_B="${FV_ID}b"
    FV_IF_A="${FV_ID}-a"
    FV_IF_B="${FV_ID}-b"
    fv_ns_create "$FV_NS_A"
    fv_ns_create "$FV_NS_B"
    fv_veth "$FV_NS_A" "$FV_IF_A" "${FV_OUTER_A:-192.0.2.1/24}" \
        "$FV_NS_B" "$FV_IF_B" "${FV_OUTER_B:-192.0.2.2/24}"
}

# fv_add_inner NS ADDR/LEN: an inner (tunnelled) address on the namespace's loopback.
fv_add_inner() { ip -n "$1" addr add "$2" dev lo; }

# fv_exec NS CMD...: run a command in a namespace in the foreground.
fv_exec() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

# fv_spawn NS CMD...: start a command in a namespace in the background; it is killed by PID at
# cleanup. Its PID is in $FV_LAST_PID (ip netns exec execs the command, so this is its PID).
# stdout/stderr go to $FV_SPAWN_LOG if set, else $FV_TMP/<pid>.log.
fv_spawn() {
    local ns="$1" log="${FV_SPAWN_LOG:-}"
    shift
    if [ -z "$log" ]; then
        log="$FV_TMP/spawn.$RANDOM.log"
    fi
    ip netns exec "$ns" "$@" >"$log" 2>&1 </dev/null &
    FV_LAST_PID=$!
    FV_PIDS+=("$FV_LAST_PID")
}

# fv_stop PID: stop one process we started (TERM, then KILL after 3 s) and forget its PID.
fv_stop() {
    local pid="$1" i p keep=()
    for p in "${FV_PIDS[@]}"; do
        [ "$p" = "$pid" ] || keep+=("$p")
    done
    FV_PIDS=("${keep[@]}")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    { wait "$pid"; } 2>/dev/null || true
}

# ---- strongSwan (charon + swanctl) in a namespace, see shared/interop.md ----

# Per-namespace charon directory (vici socket, logs): $FV_TMP/<ns>.
fv_charon_dir() { printf '%s/%s' "$FV_TMP" "$1"; }
fv_vici_uri() { printf 'unix://%s/charon.vici' "$(fv_charon_dir "$1")"; }

# fv_charon_config NS STRONGSWAN_CONF SWANCTL_CONF: write /etc/netns/NS/strongswan.conf and
# /etc/netns/NS/swanctl/swanctl.conf (bind-mounted over /etc by `ip netns exec`). The text may
# use @VICI@ for the vici socket URI and @DIR@ for the per-namespace directory (logs).
fv_charon_config() {
    local ns="$1" ss="$2" sw="$3" dir uri
    dir="$(fv_charon_dir "$ns")"
    uri="$(fv_vici_uri "$ns")"
    mkdir -p "$dir" "/etc/netns/$ns/swanctl"
    (cd "/etc/netns/$ns/swanctl" && mkdir -p conf.d private rsa ecdsa bliss pkcs8 pkcs12 x509 \
        x509ca x509ocsp x509aa x509ac x509crl pubkey)
    ss="${ss//@VICI@/$uri}"
    ss="${ss//@DIR@/$dir}"
    sw="${sw//@VICI@/$uri}"
    sw="${sw//@DIR@/$dir}"
    printf '%s\n' "$ss" >"/etc/netns/$ns/strongswan.conf"
    printf '%s\n' "$sw" >"/etc/netns/$ns/swanctl/swanctl.conf"
}

# charon's plugin list. The order is the preference: the first plugin that registers an algorithm
# provides it. `openssl` comes first so that OpenSSL (AES-NI, PCLMUL GHASH) provides AES-GCM and
# AES-CBC, strongSwan's best standard configuration; the software `aes` and `gcm` plugins stay
# loaded only as fallbacks (loading them before openssl made libipsec run strongSwan's own GCM,
# about 7x slower). `fv_charon_provider NS AES_GCM_16` shows which plugin won.
FV_CHARON_LOAD="random nonce openssl aes sha1 sha2 md5 hmac gmp curve25519 kdf gcm pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown"

# A strongswan.conf for a libipsec charon logging to @DIR@/charon.log. $2: extra lines inside
# `charon { }`; $3: filelog levels, one per line (default "default = 2").
fv_strongswan_conf() {
    local name="$1" extra="${2:-}" levels="${3:-default = 2}"
    cat <<EOF
charon {
    load = $FV_CHARON_LOAD
    install_routes = yes
    plugins {
        vici {
            socket = @VICI@
        }
    }
    filelog {
        $name {
            path = @DIR@/charon.log
            time_format = %H:%M:%S
            ike_name = yes
            append = no
            $levels
            flush_line = yes
        }
    }
    syslog {
        daemon {
            default = -1
        }
    }
$extra
}
EOF
}

# fv_charon_start NS: start charon in NS with a private /run (its pid file path is fixed).
fv_charon_start() {
    local ns="$1" dir
    dir="$(fv_charon_dir "$ns")"
    mkdir -p "$dir"
    FV_SPAWN_LOG="$dir/charon.stdout" fv_spawn "$ns" unshare -m --propagation private \
        sh -c "mount -t tmpfs tmpfs /run && exec $FV_CHARON_BIN"
    FV_CHARON_PID[$ns]="$FV_LAST_PID"
}

# fv_charon_wait NS [SECONDS]: wait until charon answers on its vici socket.
fv_charon_wait() {
    local ns="$1" secs="${2:-15}" i pid
    pid="${FV_CHARON_PID[$ns]}"
    for i in $(seq 1 $((secs * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            fv_log "charon in $ns exited early; its output:"
            cat "$(fv_charon_dir "$ns")/charon.stdout" >&2 || true
            return 1
        fi
        if [ -S "$(fv_charon_dir "$ns")/charon.vici" ] &&
            fv_swanctl "$ns" --stats >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    fv_log "charon in $ns did not open its vici socket within ${secs}s"
    return 1
}

# fv_swanctl NS COMMAND [ARGS...]: swanctl against this namespace's charon.
fv_swanctl() {
    local ns="$1" cmd="$2"
    shift 2
    ip netns exec "$ns" swanctl "$cmd" --uri "$(fv_vici_uri "$ns")" "$@"
}

fv_charon_load() { fv_swanctl "$1" --load-all; }

# fv_charon_provider NS ALGORITHM: the plugin that provides ALGORITHM (as swanctl --list-algs
# names it, e.g. AES_GCM_16) in NS's charon, e.g. "openssl"; empty when none does.
fv_charon_provider() {
    fv_swanctl "$1" --list-algs | sed -n "s/^ *$2\[\([^]]*\)\].*/\1/p" | head -n 1
}

fv_charon_stop() {
    local ns="$1"
    fv_stop "${FV_CHARON_PID[$ns]}"
}
