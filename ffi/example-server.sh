# Sourced by the example scripts (bash): a real license server for them.
#   start_example_server ENTITLE_CLI DIR
# starts `entitle serve` on 127.0.0.1, a free port, over DIR/server (made
# by ffi/make-example-state.sh), and sets `server_url` (http://127.0.0.1:PORT,
# from the line the server prints first) and `server_pid`;
# `stop_example_server` stops it (SIGTERM) and waits for it. Put
# stop_example_server in the script's EXIT trap.
server_pid=""
server_url=""

start_example_server() {
    local entitle="$1" work="$2"
    "$entitle" --state "$work/server" serve --listen 127.0.0.1:0 \
        >"$work/serve.out" 2>"$work/serve.err" &
    server_pid=$!
    for _ in $(seq 1 300); do
        server_url="$(sed -n 's|^listening on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$work/serve.out")"
        [ -n "$server_url" ] && return 0
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "entitle serve stopped: $(cat "$work/serve.err")" >&2
            server_pid=""
            return 1
        fi
        sleep 0.1
    done
    echo "entitle serve did not say where it listens within 30 s" >&2
    return 1
}

stop_example_server() {
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
