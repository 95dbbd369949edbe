# Sourced by bench/run.sh: instructions per statement of each proxy, counted by
# valgrind --tool=callgrind, which the machine's noise does not disturb (perf's hardware
# counters are not available in this VM).
#
# For each mode a fresh proxy runs under callgrind twice: once for one pgbench client doing
# N statements, once for 2N. Both runs pay the same start-up, TLS handshake, login and
# shutdown, so (I(2N) - I(N)) / N is the cost of one statement alone: relaying the query,
# the checkout, the reply, TLS on the client side. Uses run.sh's variables and helpers.

# Total instructions (Ir) a finished callgrind run recorded.
cg_total() {
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# Runs `proxy` (redveil | pgbouncer) under callgrind, N pgbench statements in `mode`,
# and prints the instructions it executed.
cg_run() {
    local proxy=$1 mode=$2 n=$3 port pid out dir=$tmp/callgrind
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    port=$(free_port)
    out=$dir/$proxy-$mode-$n.out
    case $proxy in
        redveil)
            sed "s/^address = .*/address = \"127.0.0.1:$port\"/" "$tmp/redveil.toml" >"$dir/redveil.toml"
            valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
                --dump-line=no "$redveil_bin" --config "$dir/redveil.toml" \
                >"$dir/valgrind.log" 2>&1 &
            pid=$!
            pids+=("$pid")
            target_env redveil
            ;;
        pgbouncer)
            sed -e "s/^listen_port = .*/listen_port = $port/" \
                -e "s|^pidfile = .*|pidfile = $dir/pgbouncer.pid|" \
                -e "s|^logfile = .*|logfile = $dir/pgbouncer.log|" \
                "$tmp/pgbouncer/pgbouncer.ini" >"$dir/pgbouncer.ini"
            [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pgbouncer.ini"
            rm -f "$dir/pgbouncer.pid"
            as_service valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
                --dump-line=no "$pgbouncer_bin" "$dir/pgbouncer.ini" >"$dir/valgrind.log" 2>&1 &
            pids+=("$!")
            target_env pgbouncer
            ;;
    esac
    local envv=("${target_envv[@]}")
    envv=("${envv[@]/#PGPORT=*/PGPORT=$port}")
    for _ in $(seq 1 300); do
        env "${envv[@]}" psql -X -q -t -c 'SELECT 1' >/dev/null 2>&1 && break
        sleep 0.2
    done
    [ "$proxy" = pgbouncer ] && pid=$(cat "$dir/pgbouncer.pid")
    # The readiness probe above is part of both runs alike, so it cancels out.
    env "${envv[@]}" pgbench -n -S -M "$mode" -c 1 -j 1 -t "$n" >/dev/null 2>&1 ||
        die "pgbench under callgrind ($proxy, $mode) failed"
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    sleep 0.5
    [ -s "$out" ] || die "callgrind wrote nothing for $proxy ($dir/valgrind.log)"
    cg_total "$out"
}

callgrind_phase() {
    local n=$1 mode proxy i1 i2
    log "instructions per statement under callgrind ($n and $((2 * n)) statements, 1 client)"
    for mode in $MODES; do
        for proxy in pgbouncer redveil; do
            if [ "$mode" = prepared ] && [ "$proxy" = pgbouncer ]; then
                continue
            fi
            i1=$(cg_run "$proxy" "$mode" "$n")
            i2=$(cg_run "$proxy" "$mode" "$((2 * n))")
            printf 'callgrind\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$proxy" "$n" "$i1" "$i2" >>"$results"
            log "  $mode $proxy: $(((i2 - i1) / n)) instructions per statement"
        done
    done
}
