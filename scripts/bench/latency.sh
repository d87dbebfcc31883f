#!/usr/bin/env bash
# Response-time percentiles at a fixed rate, in ../shared/bench's setting (proxy pinned to CPU 1, SIPp to
# CPU 0, the same scenarios), from SIPp's per-call response times (-trace_rtt): the issue-17 latency goal
# is p99 <= 2 ms at 80 % of the highest rate run.sh finds.
#
#   scripts/bench/latency.sh --target './siplua -config scripts/bench/s1.toml -l udp:127.0.0.1:{PORT}' \
#       --rate 30000 --secs 10 S1
#   scripts/bench/latency.sh --kamailio S2 --rate 1400 --secs 10      # Kamailio native, as run-kamailio.sh
#
# Prints: "S1 latency at 30000/s: 300000 calls, 0 failed, p50 0.21 ms, p90 0.40 ms, p99 1.10 ms, max 9 ms".
# SIPp measures in milliseconds: sub-millisecond values are the share of calls that took 0 ms vs 1 ms.
# Then the proxy's CPU over the SIPp run at that fixed rate, from /proc (user + system of its process tree):
# "proxy CPU 11.2 us/call (user 6.1, system 5.1)". --cpus LIST pins the proxy elsewhere than CPU 1 (SIPp stays
# on CPU 0): "--cpus 0,1" gives it both cores, with GOMAXPROCS 2, for the 1-core vs 2-core comparison.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=${BENCH:-$HERE/../../../shared/bench}
PORT=5060 UAS_PORT=5072 UAC_PORT=5071 RATE="" SECS=10 TARGET="" KAM=no SC="" CPUS=1
while [ $# -gt 0 ]; do
	case $1 in
	--target) TARGET=$2; shift 2 ;;
	--kamailio) KAM=yes; shift ;;
	--rate) RATE=$2; shift 2 ;;
	--secs) SECS=$2; shift 2 ;;
	--port) PORT=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	S1 | S2) SC=$1; shift ;;
	*) echo "usage: $0 (--target CMD | --kamailio) --rate R [--secs S] [--port P] [--cpus LIST] S1|S2" >&2; exit 2 ;;
	esac
done
[ -n "$SC" ] && [ -n "$RATE" ] || { echo "scenario and --rate are required" >&2; exit 2; }
OUT=$(mktemp -d /tmp/latency.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

if [ $KAM = yes ]; then
	cfg=$BENCH/kamailio/$SC-native.cfg
	mkdir -p "$OUT/kam"
	# as run-kamailio.sh starts it (2 UDP workers, its memory and receive buffer settings)
	timeout -k 5 $((SECS + 60)) taskset -c "$CPUS" kamailio -f "$cfg" -DD -E -Y "$OUT/kam" -P "$OUT/kam/k.pid" -w "$OUT/kam" \
		-l "udp:127.0.0.1:$PORT" -m 1024 -M 32 -b 4194304 -A 'UDP_CHILDREN=2' \
		-A "CTL_SOCK=\"unix:/tmp/kamailio-latency-$PORT.ctl\"" >"$OUT/proxy.log" 2>&1 &
else
	cmd=${TARGET//\{PORT\}/$PORT}
	timeout -k 5 $((SECS + 60)) taskset -c "$CPUS" bash -c "$cmd" >"$OUT/proxy.log" 2>&1 &
fi
pids+=($!)
for _ in $(seq 100); do ss -uln | grep -q "127.0.0.1:$PORT " && break; sleep 0.1; done
sleep 1
common=(-i 127.0.0.1 -bind_local -nostdin -buff_size 8388608 -recv_timeout 10000 -trace_err)
COUNT=$((RATE * SECS))
case $SC in
S1) scen=s1-register-404.xml extra=() ;;
S2)
	printf 'SEQUENTIAL\ns2callee;\n' >"$OUT/callee.csv"
	timeout $((SECS + 30)) taskset -c 0 sipp -sf "$BENCH/scenarios/call-uas.xml" "${common[@]}" -p $UAS_PORT \
		-mp 17000 -cp 18893 -error_file "$OUT/uas-err.log" >"$OUT/uas.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do ss -uln | grep -q "127.0.0.1:$UAS_PORT " && break; sleep 0.1; done
	scen=call-uac.xml extra=(-inf "$OUT/callee.csv" -key target "127.0.0.1:$UAS_PORT")
	;;
esac
l=$((RATE * 3)); [ $l -ge 1000 ] || l=1000
# user and system clock ticks of the proxy's process tree (every process under the timeout we started)
ticks() {
	local all=() p k
	local todo=("${pids[0]}")
	while [ ${#todo[@]} -gt 0 ]; do
		p=${todo[0]}; todo=("${todo[@]:1}"); all+=("$p")
		for k in $(pgrep -P "$p"); do todo+=("$k"); done
	done
	for p in "${all[@]}"; do cat "/proc/$p/stat" 2>/dev/null; done | sed 's/^.*) //' | awk '{u += $12; s += $13} END {print u + 0, s + 0}'
}
read -r u0 s0 < <(ticks)
(cd "$OUT" && timeout $((SECS + 40)) taskset -c 0 sipp "127.0.0.1:$PORT" -sf "$BENCH/scenarios/$scen" "${common[@]}" \
	-p $UAC_PORT -mp 16000 -cp 18890 -r "$RATE" -m "$COUNT" -l "$l" "${extra[@]}" \
	-trace_rtt -rtt_freq 1 -error_file "$OUT/uac-err.log" >"$OUT/uac.log" 2>&1) && rc=0 || rc=$?
read -r u1 s1 < <(ticks)
rtt=$(ls "$OUT"/*_rtt.csv 2>/dev/null | head -1)
[ -n "$rtt" ] || { echo "no SIPp rtt file (see $OUT)" >&2; exit 1; }
failed=$( [ "$rc" = 0 ] && echo "sipp rc 0 (every call succeeded)" || echo "sipp rc $rc (failed calls: see $OUT)")
# rtt file: Date_ms;response_time_ms;rtd_no (a header line first); percentiles of the sorted times
awk -F';' 'NR > 1 && $2 != "" { print $2 + 0 }' "$rtt" | sort -g | awk -v sc="$SC" -v rate="$RATE" -v failed="${failed:-0}" '
	{ v[++n] = $1 }
	END {
		if (n == 0) { print sc " latency: no samples"; exit 1 }
		printf "%s latency at %s/s: %d calls, %s, p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			sc, rate, n, failed, v[int(n * 0.50) + 1], v[int(n * 0.90) + 1], v[int(n * 0.99) + 1], v[n]
	}'
hz=$(getconf CLK_TCK)
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$COUNT" -v hz="$hz" 'BEGIN {
	f = 1e6 / hz / n
	printf "proxy CPU %.1f us/call (user %.1f, system %.1f) over the run\n", (u + s) * f, u * f, s * f
}'
echo "details: $OUT" >&2
