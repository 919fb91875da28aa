# uptls reproduction runtime: sourced by the run.sh that `make repro` writes.
# POSIX sh, curl, sed, awk; no Python. It starts uptls-backend and the
# target from the folder's templates, sends the scenario's requests, reads
# what the backend observed on the wire (one JSON object per line) and
# checks each expectation the way the uptls driver does
# (harness/uptls/verdict.py). Exit status: 0 the target behaved as
# documented, 1 the finding reproduces, 2 it could not run.

FAILED=0
PIDS=""
WORK=""

say() { printf '%s\n' "$*"; }

cannot_run() {
    say "COULD NOT RUN: $*"
    exit 2
}

cleanup() {
    for pid in $PIDS; do
        kill -TERM "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    done
    for pid in $PIDS; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -KILL "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    done
    PIDS=""
    if [ -n "$WORK" ]; then
        if [ -n "${KEEP:-}" ]; then say "(kept: $WORK)"; else rm -rf "$WORK"; fi
    fi
}

# start_bg CMD...: run in the background in its own process group (setsid
# where the system has it), so stopping it stops what it forked.
start_bg() {
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" &
    else
        "$@" &
    fi
    PIDS="$PIDS $!"
    LAST_PID=$!
}

# subst FILE: the templates' placeholders -> this run's folder and ports.
subst() {
    sed -e "s|@DIR@|$HERE_SED|g" -e "s|@RUN@|$RUN_SED|g" $PORT_SED "$1" > "$1.tmp" &&
        cat "$1.tmp" > "$1" && rm -f "$1.tmp"
}

setup() {
    for tool in curl sed awk; do
        command -v $tool >/dev/null 2>&1 || cannot_run "$tool is not installed"
    done
    [ -x "$BACKEND" ] || cannot_run "no uptls-backend at $BACKEND (set UPTLS_BACKEND=...)"
    [ -x "$TARGET_BIN" ] || command -v "$TARGET_BIN" >/dev/null 2>&1 ||
        cannot_run "no target binary at $TARGET_BIN (set TARGET_BIN=...)"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/uptls-repro.XXXXXX") || cannot_run "mktemp failed"
    trap cleanup EXIT
    trap 'exit 2' INT TERM
    RUN="$WORK/run"
    cp -R "$HERE/template/target" "$RUN"
    chmod 711 "$WORK" "$RUN" 2>/dev/null  # workers running as nobody reach the run folder
    [ -n "${PORT_FIXED:-}" ] || free_block
    HERE_SED=$(printf '%s' "$HERE" | sed 's/[|&\\]/\\&/g')
    RUN_SED=$(printf '%s' "$RUN" | sed 's/[|&\\]/\\&/g')
    PORT_SED=""
    i=0
    while [ $i -lt "$NPORTS" ]; do
        eval "P$i=$((PORT_BASE + i))"
        PORT_SED="$PORT_SED -e s|@PORT_$i@|$((PORT_BASE + i))|g"
        i=$((i + 1))
    done
    find "$RUN" -type f | while read -r f; do subst "$f"; done
    cp "$HERE/template/backends.jsonl" "$WORK/backends.jsonl"
    subst "$WORK/backends.jsonl"
    LOG="$RUN/backend.log.jsonl"
    : > "$LOG"
    start_bg "$BACKEND" --listeners "$WORK/backends.jsonl" > "$WORK/backend.out" 2> "$WORK/backend.err"
    i=0
    until grep -q '"event":"ready"' "$WORK/backend.out" 2>/dev/null; do
        kill -0 "$LAST_PID" 2>/dev/null ||
            cannot_run "uptls-backend exited at start: $(tail -n 3 "$WORK/backend.err")"
        [ $i -lt 100 ] || cannot_run "uptls-backend not ready within 10 s (ports $PORT_BASE+: set PORT_BASE=...)"
        sleep 0.1; i=$((i + 1))
    done
}

# free_block: move PORT_BASE on (by 101, 20 times at most) until none of
# its NPORTS ports has a listener (curl: 7 = refused). PORT_BASE=N given by
# the user is kept as it is.
free_block() {
    tries=0
    while [ $tries -lt 20 ]; do
        i=0; busy=""
        while [ $i -lt "$NPORTS" ]; do
            curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$((PORT_BASE + i))/" 2>/dev/null
            [ $? -eq 7 ] || { busy=1; break; }
            i=$((i + 1))
        done
        [ -z "$busy" ] && return 0
        PORT_BASE=$((PORT_BASE + 101)); tries=$((tries + 1))
    done
    cannot_run "no free block of $NPORTS ports found from 127.0.0.1:$PORT_BASE (set PORT_BASE=...)"
}

# start_target CMD...: start the proxy; ready when $P0 accepts.
start_target() {
    start_bg "$@" > "$WORK/target.out" 2>&1
    TARGET_PID=$LAST_PID
    i=0
    while :; do
        kill -0 "$TARGET_PID" 2>/dev/null ||
            cannot_run "the target exited at start: $(tail -n 5 "$WORK/target.out" "$RUN"/*.log 2>/dev/null | tail -n 5)"
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$P0/" 2>/dev/null
        rc=$?
        [ $rc -ne 7 ] && [ $rc -ne 28 ] && break     # 7: refused, 28: timeout
        [ $i -lt 100 ] || cannot_run "the target did not listen on 127.0.0.1:$P0 within 10 s"
        sleep 0.1; i=$((i + 1))
    done
}

# step N LOCATION REQUESTS URL: REQUESTS GETs (URL + request number), each on
# a new connection; then the backend's lines for this step in $WORK/stepN.
step() {
    STEP=$1; STEP_LOC=$2; n=$3; url=$4
    mark=$(wc -l < "$LOG")
    say ""
    say "step $STEP: $n request(s) to location '$STEP_LOC'"
    : > "$WORK/resp$STEP"
    r=1
    while [ $r -le "$n" ]; do
        kill -0 "$TARGET_PID" 2>/dev/null || cannot_run "the target died during step $STEP"
        out=$(curl -s -D "$WORK/h" -o "$WORK/body" --max-time 20 -H 'Connection: close' \
              -H 'User-Agent: uptls' -w '%{http_code} %{time_total}' "$url$r" 2>/dev/null)
        rc=$?
        backend=$(sed -n 's/^[Xx]-[Uu]ptls-[Bb]ackend: *\([^[:space:]]*\).*/\1/p' "$WORK/h" 2>/dev/null)
        # code time backend curl-exit (18: the body ended before its framing)
        say "$out ${backend:--} $rc" >> "$WORK/resp$STEP"
        say "  request $r: status $(echo "$out" | cut -d' ' -f1) in $(echo "$out" | cut -d' ' -f2) s$( [ -n "$backend" ] && printf ' from backend %s' "$backend")$( [ $rc -eq 18 ] && printf ' (body cut short)')"
        r=$((r + 1))
    done
    # Wait until every accepted connection has its handshake outcome (5 s).
    i=0
    while :; do
        tail -n +"$((mark + 1))" "$LOG" > "$WORK/step$STEP"
        a=$(grep -c '"event":"accept"' "$WORK/step$STEP")
        h=$(grep -c '"event":"handshake"' "$WORK/step$STEP")
        [ "$a" -le "$h" ] || [ $i -ge 50 ] || { sleep 0.1; i=$((i + 1)); continue; }
        break
    done
    grep '"event":"handshake"' "$WORK/step$STEP" | while read -r line; do
        say "  backend $(field name "$line") conn $(field conn "$line"): handshake $(hs_summary "$line")"
    done
    grep '"event":"request"' "$WORK/step$STEP" | while read -r line; do
        say "  backend $(field name "$line") received $(field path "$line")"
    done
}

# field NAME LINE: a scalar field of a JSON line ("…" stripped; null kept).
field() {
    printf '%s\n' "$2" | sed -nE "s/.*\"$1\":(\"([^\"]*)\"|([^,}]*)).*/\2\3/p" | head -n 1
}

hs_summary() {
    if [ "$(field ok "$1")" = "true" ]; then
        printf '%s %s, resumed %s, SNI %s, client certificate %s' "$(field version "$1")" \
            "$(field cipher "$1")" "$(field resumed "$1")" "$(field sni "$1")" "$(cert_of "$1")"
    else
        printf 'failed: %s' "$(field error "$1")"
    fi
}

cert_of() {
    c=$(printf '%s\n' "$1" | sed -nE 's/.*"client_cert":\{[^}]*"subject":"([^"]*)".*/\1/p')
    printf '%s' "${c:-none}"
}

# suites all|tls12|tls13: filter offered names (stdin) as verdict.py does:
# signalling values (SCSV) are never suites; TLS 1.3 suites by name or code.
suites() {
    awk -v kind="$1" '
        /^(TLS_EMPTY_RENEGOTIATION_INFO_SCSV|TLS_FALLBACK_SCSV|0x00FF|0x00ff|0x5600)$/ { if (kind != "all") next }
        { t13 = ($0 ~ /^TLS_AES_/ || $0 ~ /^TLS_CHACHA20_/ || $0 ~ /^0x130[1-5]$/) }
        kind == "all" || (kind == "tls13" && t13) || (kind == "tls12" && !t13) { print }'
}

ok() { say "  ok    $*"; }
bad() { say "  FAIL  $*"; FAILED=1; }

hs_ok() { grep '"event":"handshake"' "$WORK/step$STEP" | grep '"ok":true'; }
hellos() { grep '"event":"client_hello"' "$WORK/step$STEP"; }
statuses() { cut -d' ' -f1 "$WORK/resp$STEP" | tr '\n' ' ' | sed 's/ $//'; }
reached() { grep '"event":"request"' "$WORK/step$STEP" | sed -nE 's/.*"name":"([^"]*)".*/\1/p' | sort -u; }

# expect KEY VALUE...: one expectation of the scenario's step (scenario keys).
expect() {
    key=$1; shift
    case $key in
    result) expect_result "$1" ;;
    resumed)
        flags=$(hs_ok | sed -nE 's/.*"resumed":(true|false).*/\1/p' | tr '\n' ' ' | sed 's/ $//')
        case $1 in
        none) case " $flags " in *" true "*) bad "resumed none: resumed per handshake [$flags]" ;;
              *) ok "resumed none ([$flags])" ;; esac ;;
        all) case " $flags " in *" false "*|"  ") bad "resumed all: resumed per handshake [$flags]" ;;
             *) ok "resumed all ([$flags])" ;; esac ;;
        all-after-first)
            first=${flags%% *}; rest=${flags#* }
            if [ "$first" = "$flags" ]; then bad "resumed all-after-first: only [$flags] (needs 2 handshakes)"
            elif [ "$first" != false ] || case " $rest " in *" false "*) true ;; *) false ;; esac; then
                bad "resumed all-after-first: resumed per handshake [$flags]"
            else ok "resumed all-after-first ([$flags])"; fi ;;
        esac ;;
    sni)
        want=$1; [ "$want" = absent ] && want=null
        got=$(hellos | while read -r l; do field sni "$l"; done | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ -z "$got" ]; then bad "sni $1: no ClientHello observed"
        elif [ "$got" = "$want" ]; then ok "sni $1"
        else bad "sni: expected $1, the ClientHellos carried [$got]"; fi ;;
    client_cert)
        want=$1   # none, or the expected certificate's sha256 (the scenario's PKI entity)
        label=$2
        [ -n "$(hs_ok)" ] || { bad "client_cert: no completed handshake"; return; }
        got=$(hs_ok | sed -nE 's/.*"client_cert":\{[^}]*"sha256":"([0-9a-f]*)".*/\1/p; t; s/.*/none/p' | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ "$got" = "$want" ]; then ok "client_cert $label"
        else bad "client_cert: expected $label, got [$(hs_ok | while read -r l; do cert_of "$l"; printf ' '; done)]"; fi ;;
    client_chain_len)
        got=$(hs_ok | grep '"resumed":false' | sed -nE 's/.*"client_cert":\{[^}]*"chain_len":([0-9]+).*/\1/p; t; s/.*/0/p' | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ "$got" = "$1" ]; then ok "client_chain_len $1"; else bad "client_chain_len: expected $1, sent [$got]"; fi ;;
    negotiated_version|negotiated_cipher)
        f=version; [ "$key" = negotiated_cipher ] && f=cipher
        got=$(hs_ok | while read -r l; do field $f "$l"; done | sort -u | tr '\n' ' ' | sed 's/ $//')
        if [ "$got" = "$1" ]; then ok "$key $1"; else bad "$key: expected $1, got [${got:-no completed handshake}]"; fi ;;
    offered_versions|offered_versions_exclude|offered_ciphers|offered_ciphersuites|offered_ciphers_exclude)
        want=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ' | sed 's/ $//')
        [ -n "$(hellos)" ] || { bad "$key: no ClientHello observed"; return; }
        case $key in
        offered_versions*) list=versions; kind=all ;;
        offered_ciphersuites) list=ciphers; kind=tls13 ;;
        *) list=ciphers; kind=tls12 ;;
        esac
        hellos | sed -nE "s/.*\"$list\":\\[([^]]*)\\].*/\\1/p" | tr -d '"' > "$WORK/v"
        fail=""
        while read -r v; do
            got=$(printf '%s\n' "$v" | tr ',' '\n' | suites $kind | sort -u | tr '\n' ' ' | sed 's/ $//')
            case $key in
            offered_versions|offered_ciphers|offered_ciphersuites) [ "$got" = "$want" ] || fail="[$got]" ;;
            offered_versions_exclude)
                for x in "$@"; do case " $got " in *" $x "*) fail="[$got] includes $x" ;; esac; done ;;
            offered_ciphers_exclude)
                for x in "$@"; do for c in $got; do case $c in *"$x"*) fail="$c" ;; esac; done; done ;;
            esac
        done < "$WORK/v"
        if [ -z "$fail" ]; then ok "$key [$want]"; else bad "$key [$want]: a ClientHello offered $fail"; fi ;;
    resumed_per_backend)
        for b in $(hs_ok | sed -nE 's/.*"name":"([^"]*)".*/\1/p' | sort -u); do
            flags=$(hs_ok | grep "\"name\":\"$b\"" | sed -nE 's/.*"resumed":(true|false).*/\1/p' | tr '\n' ' ' | sed 's/ $//')
            first=${flags%% *}; rest=${flags#* }
            if [ "$first" = "$flags" ] || [ "$first" != false ] ||
                case " $rest " in *" false "*) true ;; *) false ;; esac; then
                bad "resumed_per_backend: backend '$b' resumed per handshake [$flags] (expected a full one, then only resumed ones)"
            else ok "resumed_per_backend '$b' ([$flags])"; fi
        done
        [ -n "$(hs_ok)" ] || bad "resumed_per_backend: no completed handshake" ;;
    fresh_first_contact)
        carried=""
        for b in $(hellos | sed -nE 's/.*"name":"([^"]*)".*/\1/p' | sort -u); do
            hellos | grep "\"name\":\"$b\"" | head -n 1 |
                grep -Eq '"(psk|ticket)_offered":true' && carried="$carried $b"
        done
        if [ -n "$(hellos)" ] && [ -z "$carried" ]; then ok "fresh_first_contact"
        else bad "fresh_first_contact: the first ClientHello to [${carried# }] already offered a session (PSK or ticket)"; fi ;;
    offered_versions_default_wire)
        # The documented default as far as the wire shows it (verdict.py): with
        # TLS 1.3, supported_versions (43) lists exactly the set; without, no
        # supported_versions and the legacy version is the set's highest.
        want=$(printf '%s\n' "$@" | sort -u | tr '\n' ' ' | sed 's/ $//')
        top=$(printf '%s\n' "$@" | awk '{ r = ($0 == "TLSv1" ? 0 : $0 == "TLSv1.1" ? 1 : $0 == "TLSv1.2" ? 2 : 3) }
                                        r >= m { m = r; t = $0 } END { print t }')
        fail=""
        [ -n "$(hellos)" ] || fail="no ClientHello observed"
        hellos > "$WORK/v"
        while read -r l; do
            exts=",$(printf '%s\n' "$l" | sed -nE 's/.*"extensions":\[([^]]*)\].*/\1/p'),"
            got=$(printf '%s\n' "$l" | sed -nE 's/.*"versions":\[([^]]*)\].*/\1/p' | tr -d '"' | tr ',' '\n' | sort -u | tr '\n' ' ' | sed 's/ $//')
            case " $want " in
            *" TLSv1.3 "*) case $exts in *,43,*) [ "$got" = "$want" ] || fail="versions [$got]" ;;
                           *) fail="no supported_versions" ;; esac ;;
            *) case $exts in *,43,*) fail="supported_versions present" ;;
               *) [ "$(field legacy_version "$l")" = "$top" ] || fail="legacy version $(field legacy_version "$l")" ;; esac ;;
            esac
        done < "$WORK/v"
        if [ -z "$fail" ]; then ok "offered_versions_default_wire [$want]"
        else bad "offered_versions_default_wire: expected the documented default [$want]; $fail"; fi ;;
    handshakes)
        got=$(grep -c '"event":"handshake"' "$WORK/step$STEP")
        if [ "$got" = "$1" ]; then ok "handshakes $1"; else bad "handshakes: expected $1, the backends saw $got"; fi ;;
    backend_seen)
        for b in "$@"; do
            if reached | grep -qx "$b"; then ok "backend_seen $b"; else bad "backend_seen: '$b' received no request"; fi
        done ;;
    backend_not_seen)
        for b in "$@"; do
            if grep '"event":"accept"' "$WORK/step$STEP" | grep -q "\"name\":\"$b\""; then
                bad "backend_not_seen: '$b' got a connection"
            else ok "backend_not_seen $b"; fi
        done ;;
    status_in)
        odd=""; for s in $(statuses); do case " $* " in *" $s "*) ;; *) odd="$odd $s" ;; esac; done
        if [ -z "$odd" ]; then ok "status_in [$*]"; else bad "status_in [$*]: got [$(statuses)]"; fi ;;
    within_s)
        slow=$(awk -v lim="$1" '$2 > lim { printf "%s ", $2 }' "$WORK/resp$STEP")
        if [ -z "$slow" ]; then ok "within_s $1"; else bad "within_s $1: took ${slow}s"; fi ;;
    answers_whole)
        cut=$(awk '!($1 >= 500 || $4 == 0) { printf "%s ", $1 }' "$WORK/resp$STEP")
        if [ -z "$cut" ]; then ok "answers_whole"; else bad "answers_whole: answers cut short (statuses $cut)"; fi ;;
    truncation_signalled)
        whole=$(awk '$1 > 0 && $1 < 500 && $4 == 0 { printf "%s ", $1 }' "$WORK/resp$STEP")
        if [ -z "$whole" ]; then ok "truncation_signalled"
        else bad "truncation_signalled: a cut-short body reached the client as complete (statuses $whole)"; fi ;;
    *) cannot_run "run.sh cannot check '$key' (regenerate with a newer uptls)" ;;
    esac
}

expect_result() {
    st=$(statuses); reach=$(reached | tr '\n' ' ' | sed 's/ $//')
    case $1 in
    accepted)
        if awk '$1 != 200 || $3 == "-" { bad = 1 } END { exit !bad }' "$WORK/resp$STEP"; then
            bad "result accepted: expected every request forwarded (200 from a backend); got statuses [$st]"
        elif awk '$4 == 18 { c = 1 } END { exit !c }' "$WORK/resp$STEP"; then
            bad "result accepted: a forwarded answer was cut short"
        else ok "result accepted (statuses [$st], reached [$reach])"; fi ;;
    reached)
        if [ -n "$reach" ]; then ok "result reached ([$reach])"
        else bad "result reached: no request reached a backend (statuses [$st])"; fi ;;
    refused)
        if [ -n "$reach" ] || awk '$3 != "-" { c = 1 } END { exit !c }' "$WORK/resp$STEP"; then
            bad "result refused: expected no request to reach a backend; [$reach] received requests (statuses [$st]) -- UNEXPECTED ACCEPT"
        elif awk -v closes="${REFUSAL_CLOSES:-0}" '!($1 >= 500 || closes && $1 == "000") { c = 1 } END { exit !c }' "$WORK/resp$STEP"; then
            bad "result refused: expected a 5xx answer for each refused request; got [$st]"
        else ok "result refused (statuses [$st], no request reached a backend)"; fi ;;
    esac
}

finish() {
    say ""
    if [ "$FAILED" -ne 0 ]; then
        say "FINDING REPRODUCED: $TARGET_NAME did not behave as documented (see FAIL above; README.md says why it matters)"
        exit 1
    fi
    say "CONFORMS: $TARGET_NAME behaved as documented"
    exit 0
}
