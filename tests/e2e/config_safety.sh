#!/usr/bin/env bash
# Configuration and secret-file safety, for real (issue 12 §3, §4):
#   examples           the README's first command verbatim, and `check` of every config/*.toml,
#                      in a copy of the tree as a fresh clone has it (git archive: modes 0644,
#                      no key files installed): exit 0, the missing key file a warning only.
#   check-refuses      `check` refuses, with the message naming the key, what `up` would refuse
#                      or what cannot work: interface "lo", control_socket a directory or "",
#                      workers = 10000, routes = [], a multicast remote_addr, an 8-day lifetime,
#                      a symlinked psk_file (said to be a symlink, not "chmod 600").
#   symlinked-key-dir  save_keys_dir is a symlink to another directory: the daemon (root, in a
#                      namespace) refuses to start with a clear error, creates no TUN and no
#                      socket, and no file outside is touched. Likewise a key file inside the
#                      directory that is a symlink, and a world-writable key directory.
#   planted-key-file   a symlink planted in a good key directory after startup: the daemon keeps
#                      running, brings the tunnel up, refuses that one file (logged), writes the
#                      other table 0600, and the symlink's target is untouched.
#   relative-paths     relative control_socket and psk_file are found next to the config file
#                      whatever the daemon's working directory (here `/`); the daemon logs the
#                      legacy-algorithm and chacha20poly1305 warnings at startup.
# Needs root (namespaces); skips with a reason otherwise (fails with CI=true).
# Env: FERROVPN_BIN (binary to test), E2E_CASES (space-separated subset of the names above).
set -euo pipefail
E2E_ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$E2E_ROOT/scripts/lib/netns.sh"
. "$E2E_ROOT/tests/e2e/lib/e2e.sh"

require_root_or_skip "config_safety.sh needs network namespaces"
require_cmd_or_skip ip python3 sha256sum
e2e_binary

# snapshot DIR: every entry under DIR with its type, mode, size, mtime and content hash.
snapshot() {
    (cd "$1" && find . -printf '%p %y %m %s %T@ %l\n' | sort &&
        find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# A victim directory with a file someone cares about.
make_victim() {
    mkdir -p "$FV_TMP/victim"
    printf 'precious\n' >"$FV_TMP/victim/esp_sa"
    printf 'other\n' >"$FV_TMP/victim/notes"
    chmod 644 "$FV_TMP/victim/esp_sa" "$FV_TMP/victim/notes"
    snapshot "$FV_TMP/victim" >"$FV_TMP/victim.before"
}

assert_victim_untouched() {
    snapshot "$FV_TMP/victim" >"$FV_TMP/victim.after"
    if ! diff -u "$FV_TMP/victim.before" "$FV_TMP/victim.after" >&2; then
        fail "$1: files outside the key directory were changed"
    fi
    ok "$1: nothing outside the key directory was touched (names, modes, sizes, mtimes, contents)"
}

case_examples() {
    local clone="$FV_TMP/clone" cmd f out
    mkdir -p "$clone"
    if git -C "$E2E_ROOT" rev-parse --verify -q HEAD >/dev/null 2>&1; then
        # What a fresh clone holds: the committed files, modes from the umask (no 0600 survives).
        (umask 022 && git -C "$E2E_ROOT" archive HEAD config README.md | tar -x -C "$clone")
    else
        (umask 022 && cp -r "$E2E_ROOT/config" "$E2E_ROOT/README.md" "$clone/")
    fi
    # The README's first validation command, as printed there.
    cmd="$(grep -o 'target/release/ferrovpn check -c config/route-based\.toml' "$clone/README.md" | head -n 1)"
    [ -n "$cmd" ] || fail "README.md no longer shows 'target/release/ferrovpn check -c config/route-based.toml'"
    mkdir -p "$clone/target/release"
    ln -s "$FERROVPN" "$clone/target/release/ferrovpn"
    if [ -e /etc/ferrovpn/site-b.psk ]; then
        e2e_say "  note: /etc/ferrovpn/site-b.psk exists on this host; the fresh-clone warning is not checked"
    fi
    out="$(cd "$clone" && $cmd 2>&1)" || { printf '%s\n' "$out" >&2; fail "'$cmd' failed on a fresh clone"; }
    printf '%s\n' "$out" | e2e_has '^config/route-based.toml: OK, 1 connection' ||
        { printf '%s\n' "$out" >&2; fail "'$cmd' did not say OK"; }
    if [ ! -e /etc/ferrovpn/site-b.psk ]; then
        printf '%s\n' "$out" | e2e_has 'warning     psk_file /etc/ferrovpn/site-b.psk does not exist (yet)' ||
            { printf '%s\n' "$out" >&2; fail "no warning about the key file that does not exist yet"; }
    fi
    ok "README command '$cmd' exits 0 on a fresh clone (warning: key file not created yet)"
    for f in "$clone"/config/*.toml; do
        out="$(cd "$clone" && "$FERROVPN" check -c "config/$(basename "$f")" 2>&1)" ||
            { printf '%s\n' "$out" >&2; fail "check -c config/$(basename "$f") failed"; }
        ok "check -c config/$(basename "$f"): $(printf '%s\n' "$out" | head -n 1 | sed 's/^[^:]*: //')"
    done
    out="$("$FERROVPN" check -c "$clone/config/policy-based.toml" 2>&1)"
    printf '%s\n' "$out" | e2e_has 'chacha20poly1305.*works only between ferrovpn peers' ||
        { printf '%s\n' "$out" >&2; fail "no chacha20poly1305 interoperability warning"; }
    printf '%s\n' "$out" | e2e_has "ike: sha1 in .* is a legacy hash" ||
        { printf '%s\n' "$out" >&2; fail "no legacy sha1 warning"; }
    ok "policy-based.toml: chacha20poly1305 and sha1 warnings shown"
    # `up` is stricter than `check` about exactly one thing: the key file must exist.
    if [ ! -e /etc/ferrovpn/site-b.psk ]; then
        out="$("$FERROVPN" up -c "$clone/config/route-based.toml" 2>&1)" && fail "up started without its key file"
        printf '%s\n' "$out" | e2e_has 'psk_file /etc/ferrovpn/site-b.psk does not exist$' ||
            { printf '%s\n' "$out" >&2; fail "up without its key file: unclear error"; }
        ok "up refuses the example until its key file exists: $(printf '%s\n' "$out" | tail -n 1)"
    fi
}

# expect_refused NAME CONFIG_TEXT MESSAGE: `check` exits 1 and prints MESSAGE.
expect_refused() {
    local name="$1" text="$2" want="$3" out rc=0
    printf '%s\n' "$text" >"$FV_TMP/$name.toml"
    out="$("$FERROVPN" check -c "$FV_TMP/$name.toml" 2>&1)" || rc=$?
    printf '%s\n' "$out" >"$FV_TMP/$name.out"
    [ "$rc" = 1 ] || { printf '%s\n' "$out" >&2; fail "$name: check exited $rc, want 1"; }
    printf '%s\n' "$out" | grep -F -q -- "$want" || { printf '%s\n' "$out" >&2; fail "$name: message lacks '$want'"; }
    ok "$name: $(printf '%s\n' "$out" | sed "s|^$FV_TMP/||")"
}

conn() {
    local psk='psk_file = "k.psk"'
    [ -z "${PSK:-}" ] || psk="$PSK"
    cat <<EOF
[[connection]]
name = "c"
local_addr = "192.0.2.1"
remote_addr = "${REMOTE:-192.0.2.2}"
$psk
start = "initiate"
${EXTRA:-}
[connection.route_based]
interface = "${IFACE:-fv0}"
${RB_EXTRA:-}
EOF
}

case_check_refuses() {
    e2e_psk "$FV_TMP/k.psk" secret
    mkdir -p "$FV_TMP/dir"
    expect_refused lo "$(IFACE=lo conn)" \
        'route_based.interface: lo is an existing loopback device, not a TUN'
    expect_refused socket-dir "$(printf '[daemon]\ncontrol_socket = "dir"\n'; conn)" \
        "control_socket: $FV_TMP/dir is a directory; name the socket file"
    expect_refused socket-empty "$(printf '[daemon]\ncontrol_socket = ""\n'; conn)" \
        'control_socket: must not be empty'
    expect_refused workers "$(printf '[daemon]\nworkers = 10000\n'; conn)" \
        'workers: 10000 is above the maximum of 64'
    expect_refused routes-empty "$(RB_EXTRA='routes = []' conn)" \
        'route_based.routes: empty, so nothing would be routed into fv0'
    expect_refused multicast "$(REMOTE=224.0.0.5 conn)" \
        'remote_addr: 224.0.0.5 is a multicast address'
    expect_refused lifetime "$(EXTRA='ike_lifetime = "8d"' conn)" \
        'ike_lifetime: 8d is above the maximum of 1d'
    expect_refused mss "$(RB_EXTRA=$'mtu = 1400\ntcp_mss = 1400' conn)" \
        'route_based.tcp_mss: 1400 is above mtu 1400 - 40 = 1360'
    ln -s /etc/shadow "$FV_TMP/shadow.psk"
    expect_refused psk-symlink "$(PSK='psk_file = "shadow.psk"' conn)" \
        "psk_file $FV_TMP/shadow.psk is a symbolic link (to /etc/shadow); refusing to follow it"
    if grep -q chmod "$FV_TMP/psk-symlink.out"; then fail "the symlink error suggests chmod"; fi
    chmod 644 "$FV_TMP/k.psk"
    expect_refused psk-mode "$(conn)" \
        "psk_file $FV_TMP/k.psk is readable by group/others (mode 0644); run: chmod 600 $FV_TMP/k.psk"
}

# try_up NAME CONF: runs `up` in namespace A in the foreground; it must exit 1 within 20 s.
# Its output is in $FV_TMP/NAME.up.
try_up() {
    local name="$1" conf="$2" rc=0
    ip netns exec "$FV_NS_A" timeout 20 "$FERROVPN" up -c "$conf" >"$FV_TMP/$name.up" 2>&1 || rc=$?
    E2E_LOGS+=("$FV_TMP/$name.up")
    [ "$rc" = 1 ] || fail "$name: up exited $rc, want 1 (124: still running after 20 s)"
    if ip -n "$FV_NS_A" link show fv0 >/dev/null 2>&1; then fail "$name: a TUN fv0 was created"; fi
    [ ! -e "$FV_TMP/$name.sock" ] || fail "$name: the control socket was created"
}

case_symlinked_key_dir() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" config-safety
    make_victim
    ln -s "$FV_TMP/victim" "$FV_TMP/keys"
    base() {
        C_SOCK="$FV_TMP/$1.sock" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
            C_START=initiate C_DAEMON_EXTRA="save_keys_dir = \"$2\"" \
            C_TUNNEL=$'[connection.route_based]\ninterface = "fv0"\nlocal_ts = "198.51.100.0/24"\nremote_ts = "203.0.113.0/24"' \
            e2e_conf "$FV_TMP/$1.toml"
    }

    base linkdir "$FV_TMP/keys"
    try_up linkdir "$FV_TMP/linkdir.toml"
    grep -q "save_keys_dir: $FV_TMP/keys is a symbolic link (to $FV_TMP/victim); refusing to follow it" "$FV_TMP/linkdir.up" ||
        fail "symlinked key directory: unclear error: $(cat "$FV_TMP/linkdir.up")"
    ok "symlinked save_keys_dir: up exits 1: $(tail -n 1 "$FV_TMP/linkdir.up")"
    "$FERROVPN" check -c "$FV_TMP/linkdir.toml" >/dev/null 2>&1 && fail "check accepted a symlinked save_keys_dir"
    ok "check refuses it too"
    assert_victim_untouched "symlinked save_keys_dir"

    install -d -m 700 "$FV_TMP/keys2"
    ln -s "$FV_TMP/victim/esp_sa" "$FV_TMP/keys2/esp_sa"
    base linkfile "$FV_TMP/keys2"
    try_up linkfile "$FV_TMP/linkfile.toml"
    grep -q "save_keys_dir: $FV_TMP/keys2/esp_sa is a symbolic link (to $FV_TMP/victim/esp_sa)" "$FV_TMP/linkfile.up" ||
        fail "symlinked key file: unclear error: $(cat "$FV_TMP/linkfile.up")"
    ok "symlinked esp_sa inside save_keys_dir: up exits 1: $(tail -n 1 "$FV_TMP/linkfile.up")"
    assert_victim_untouched "symlinked key file"

    install -d -m 1777 "$FV_TMP/keys3"
    base worldw "$FV_TMP/keys3"
    try_up worldw "$FV_TMP/worldw.toml"
    grep -q "save_keys_dir: $FV_TMP/keys3 is writable by group/others (mode 1777)" "$FV_TMP/worldw.up" ||
        fail "world-writable key directory: unclear error: $(cat "$FV_TMP/worldw.up")"
    [ -z "$(ls -A "$FV_TMP/keys3")" ] || fail "files were created in the refused directory"
    ok "world-writable save_keys_dir: up exits 1: $(tail -n 1 "$FV_TMP/worldw.up")"
}

case_planted_key_file() {
    FV_NO_IPV6=1 fv_two_ns
    e2e_psk "$FV_TMP/a.psk" config-safety
    e2e_psk "$FV_TMP/b.psk" config-safety
    make_victim
    install -d -m 700 "$FV_TMP/keys"
    C_SOCK="$FV_TMP/a.sock" C_LOCAL=192.0.2.1 C_REMOTE=192.0.2.2 C_PSKFILE="$FV_TMP/a.psk" \
        C_START=respond C_WORKERS=1 C_DAEMON_EXTRA="save_keys_dir = \"$FV_TMP/keys\"" \
        C_TUNNEL=$'[connection.route_based]\ninterface = "fv0"\nlocal_ts = "198.51.100.0/24"\nremote_ts = "203.0.113.0/24"' \
        e2e_conf "$FV_TMP/a.toml"
    C_SOCK="$FV_TMP/b.sock" C_LOCAL=192.0.2.2 C_REMOTE=192.0.2.1 C_PSKFILE="$FV_TMP/b.psk" \
        C_START=initiate C_WORKERS=1 \
        C_TUNNEL=$'[connection.route_based]\ninterface = "fv0"\nlocal_ts = "203.0.113.0/24"\nremote_ts = "198.51.100.0/24"' \
        e2e_conf "$FV_TMP/b.toml"
    e2e_up "$FV_NS_A" "$FV_TMP/a.toml" "$FV_TMP/daemon-a.log"
    local pid_a="$E2E_PID"
    e2e_wait_udp "$FV_NS_A" 500 10 || fail "A does not listen on UDP 500"
    e2e_wait_log "$FV_TMP/daemon-a.log" 'KEY EXPORT ON' 5 || fail "A did not announce the key export"
    # After the daemon checked the directory: a symlink where the IKE table will be written.
    ln -s "$FV_TMP/victim/esp_sa" "$FV_TMP/keys/ikev1_decryption_table"
    e2e_up "$FV_NS_B" "$FV_TMP/b.toml" "$FV_TMP/daemon-b.log"
    e2e_wait_sas "$FV_TMP/a.sock" "$pid_a" 1 20 || fail "no IPsec SA within 20 s"
    e2e_wait_log "$FV_TMP/daemon-a.log" "key export: not written: $FV_TMP/keys/ikev1_decryption_table is a symbolic link" 5 ||
        fail "the planted symlink was not reported"
    ok "planted symlink refused: $(grep -o 'key export: not written: .*' "$FV_TMP/daemon-a.log" | head -n 1 | sed 's/\x1b\[[0-9;]*m//g')"
    kill -0 "$pid_a" 2>/dev/null || fail "A died"
    [ -f "$FV_TMP/keys/esp_sa" ] && [ ! -L "$FV_TMP/keys/esp_sa" ] || fail "esp_sa was not written"
    [ "$(stat -c %a "$FV_TMP/keys/esp_sa")" = 600 ] || fail "esp_sa has mode $(stat -c %a "$FV_TMP/keys/esp_sa"), want 600"
    [ "$(grep -c . "$FV_TMP/keys/esp_sa")" -ge 2 ] || fail "esp_sa holds no SA lines"
    ok "esp_sa written, mode 600, $(grep -c . "$FV_TMP/keys/esp_sa") lines; the daemon keeps running"
    assert_victim_untouched "symlink planted after startup"
    e2e_down "$FV_TMP/b.sock" "$E2E_PID" "$FV_NS_B" fv0
    e2e_down "$FV_TMP/a.sock" "$pid_a" "$FV_NS_A" fv0
}

case_relative_paths() {
    FV_NO_IPV6=1 fv_two_ns
    mkdir -p "$FV_TMP/etc"
    e2e_psk "$FV_TMP/etc/site.psk" config-safety
    cat >"$FV_TMP/etc/site.toml" <<'EOF'
[daemon]
control_socket = "ctl.sock"
workers = 1

[[connection]]
name = "rel"
local_addr = "192.0.2.1"
remote_addr = "192.0.2.2"
psk_file = "site.psk"
ike = "aes128-sha1-modp2048"
esp = "chacha20poly1305"
start = "respond"
[connection.route_based]
interface = "fv0"
local_ts = "198.51.100.0/24"
remote_ts = "203.0.113.0/24"
EOF
    local out
    out="$(cd / && "$FERROVPN" check -c "$FV_TMP/etc/site.toml" 2>&1)" || { printf '%s\n' "$out" >&2; fail "check refused"; }
    printf '%s\n' "$out" | e2e_has "control socket $FV_TMP/etc/ctl.sock," || { printf '%s\n' "$out" >&2; fail "check does not show the resolved control socket"; }
    printf '%s\n' "$out" | e2e_has "PSK         from $FV_TMP/etc/site.psk" || { printf '%s\n' "$out" >&2; fail "check does not show the resolved psk_file"; }
    ok "check (run from /) shows $FV_TMP/etc/ctl.sock and $FV_TMP/etc/site.psk"
    # The daemon's working directory is / (as under --daemon); the paths still resolve.
    (cd / && FV_SPAWN_LOG="$FV_TMP/daemon.log" fv_spawn "$FV_NS_A" "$FERROVPN" up -c "$FV_TMP/etc/site.toml"
        printf '%s\n' "$FV_LAST_PID" >"$FV_TMP/pid")
    local pid
    pid="$(cat "$FV_TMP/pid")"
    FV_PIDS+=("$pid")
    E2E_LOGS+=("$FV_TMP/daemon.log")
    local i
    for ((i = 0; i < 50; i++)); do
        [ -S "$FV_TMP/etc/ctl.sock" ] && break
        kill -0 "$pid" 2>/dev/null || fail "daemon exited"
        sleep 0.2
    done
    [ -S "$FV_TMP/etc/ctl.sock" ] || fail "no control socket at $FV_TMP/etc/ctl.sock"
    [ ! -e /ctl.sock ] || fail "a control socket appeared at /ctl.sock"
    "$FERROVPN" status --socket "$FV_TMP/etc/ctl.sock" >/dev/null || fail "status over the resolved socket failed"
    ok "daemon started from / created its socket at $FV_TMP/etc/ctl.sock and answers status"
    grep -q 'WARN.*connection "rel": ike: sha1 in .aes128-sha1-modp2048. is a legacy hash' "$FV_TMP/daemon.log" ||
        fail "no startup warning about sha1"
    grep -q 'WARN.*connection "rel": esp: chacha20poly1305 .* works only between ferrovpn peers' "$FV_TMP/daemon.log" ||
        fail "no startup warning about chacha20poly1305"
    ok "startup log warns about the legacy sha1 proposal and chacha20poly1305"
    e2e_down "$FV_TMP/etc/ctl.sock" "$pid" "$FV_NS_A" fv0
}

CASES=(examples check-refuses symlinked-key-dir planted-key-file relative-paths)
for c in ${E2E_CASES:-${CASES[*]}}; do
    e2e_case "$c" "case_${c//-/_}"
done
e2e_summary "config_safety.sh"
