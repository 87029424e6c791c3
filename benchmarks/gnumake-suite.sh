#!/usr/bin/env bash
# GNU make's own test suite (tests/run_make_tests.pl from the make-dfsg
# source package) run through plain make and through mpmake, each behind the
# same tiny wrapper named `make`, on make 4.3 (Debian bookworm) and 4.4.1
# (Debian trixie). Prints per-script results, the subtests plain make passes
# that mpmake fails, and the totals; writes benchmarks/results/gnumake-suite.{md,json}.
#
#   bash benchmarks/gnumake-suite.sh [VERSION...] [-- SCRIPT...]
#     VERSION: 4.3, 4.4.1 (default: both); SCRIPT: e.g. features/comments
#   MPMAKE_SUITE_DIR   where sources, builds and runs go (default /tmp/mpmake-gnumake-suite)
#   MPMAKE_SUITE_LOCAL mpmake's --mp-local list (default: empty, every line to an agent)
#
# Nothing of GNU make is committed: the script gets the sources itself with
# `apt-get source --download-only` through a private apt configuration (its
# own deb-src list and package lists under MPMAKE_SUITE_DIR), and builds
# make 4.4.1 from them when the machine has no such make.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="${MPMAKE_SUITE_DIR:-/tmp/mpmake-gnumake-suite}"
local_list="${MPMAKE_SUITE_LOCAL-}"
versions=()
scripts=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; scripts=("$@"); break ;;
    *) versions+=("$1"); shift ;;
  esac
done
[ ${#versions[@]} -gt 0 ] || versions=(4.3 4.4.1)
mkdir -p "$work"
say() { echo "gnumake-suite: $*" >&2; }

# --- sources -------------------------------------------------------------
suite_of() { case "$1" in 4.3) echo bookworm ;; 4.4.1) echo trixie ;; *) say "unknown version $1"; exit 2 ;; esac; }

fetch_source() { # VERSION -> prints the extracted source directory
  local v="$1" dir="$work/src-$1"
  if [ -f "$dir/tests/run_make_tests.pl" ]; then echo "$dir"; return; fi
  local apt="$work/apt"
  mkdir -p "$apt/lists/partial" "$apt/parts" "$apt/dl"
  cat > "$apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
EOF
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
              -o "Dir::State::Lists=$apt/lists" -o "Debug::NoLocking=1")
  if [ ! -f "$apt/updated" ]; then
    say "apt-get update (private lists in $apt)"
    apt-get "${opts[@]}" update >&2 && touch "$apt/updated"
  fi
  (cd "$apt/dl" && apt-get "${opts[@]}" source --download-only "make-dfsg/$(suite_of "$v")" >&2)
  local dsc
  dsc="$(ls "$apt/dl"/make-dfsg_"$v"*.dsc | head -1)"
  rm -rf "$dir.tmp"
  dpkg-source --no-check -x "$dsc" "$dir.tmp" >&2
  mv "$dir.tmp" "$dir"
  echo "$dir"
}

version_of() { "$1" --version 2>/dev/null | sed -n '1s/^GNU Make \([0-9.]*\).*/\1/p'; }

make_for() { # VERSION SOURCE -> prints a GNU make of that version
  local v="$1" src="$2"
  for m in /usr/bin/make /usr/local/bin/make "$(command -v gmake || true)"; do
    if [ -n "$m" ] && [ -x "$m" ] && [ "$(version_of "$m")" = "$v" ]; then echo "$m"; return; fi
  done
  local b="$work/build-$v"
  if [ ! -x "$b/make" ] || [ "$(version_of "$b/make")" != "$v" ]; then
    say "building make $v from $src (no make $v on this machine)"
    rm -rf "$b" && cp -r "$src" "$b"
    # Debian's source drops the manual; configure still lists its Makefile.
    mkdir -p "$b/doc" && printf 'all install check clean distclean:\n\t@:\n' > "$b/doc/Makefile.in"
    (cd "$b" && ./configure --disable-nls -q && ./build.sh) > "$work/build-$v.log" 2>&1 ||
      { say "building make $v failed; see $work/build-$v.log"; exit 1; }
  fi
  echo "$b/make"
}

# --- agents --------------------------------------------------------------
agent_pids=()
agent_fifos=() # their output files
stop_agents() {
  for p in "${agent_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "${agent_fifos[@]}"; do rm -f "$f"; done
}
trap stop_agents EXIT

start_agent() { # -> sets $agent_addr (not in a subshell: the pid must reach stop_agents)
  local out="$work/agent-$$-${#agent_pids[@]}.out"
  local extra=()
  [ "$(id -u)" = 0 ] && extra=(--allow-root)
  node "$root/dist/cli/mpm.js" agent --listen 127.0.0.1:0 --slots 4 "${extra[@]}" > "$out" 2>/dev/null &
  agent_pids+=($!)
  agent_fifos+=("$out")
  for _ in $(seq 300); do
    if grep -q 'listening on' "$out" 2>/dev/null; then
      agent_addr="$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$out")"; return
    fi
    sleep 0.1
  done
  say "an agent did not start"; exit 1
}

# --- one run -------------------------------------------------------------
write_wrappers() { # DIR REALMAKE HOSTS
  local dir="$1" real="$2" hosts="$3"
  mkdir -p "$dir/plain" "$dir/mpmake"
  # The driver takes $(MAKE) as the make under test and resets the
  # environment: each wrapper names itself (exec -a) and carries its settings.
  printf '#!/bin/bash\nexec -a "$0" %q "$@"\n' "$real" > "$dir/plain/make"
  printf '#!/bin/bash\nexec -a "$0" %q %q --mp-quiet --mp-hosts=%q --mp-make=%q --mp-local=%q "$@"\n' \
    "$(command -v node)" "$root/dist/cli/mpmake.js" "$hosts" "$real" "$local_list" > "$dir/mpmake/make"
  chmod +x "$dir/plain/make" "$dir/mpmake/make"
}

run_suite() { # SOURCE WRAPPER OUTDIR
  local src="$1" wrapper="$2" out="$3"
  rm -rf "$out" && mkdir -p "$out"
  cp -r "$src/tests" "$out/tests"
  sed -e 's/@[A-Z_]*@//g' "$src/tests/config-flags.pm.in" > "$out/tests/config-flags.pm"
  mkdir -p "$out/src" && cp "$src/src/gnumake.h" "$out/src/"
  # The driver gives each make 5 s (some tests 6-10 s), and the helper's
  # `wait FILE` gives up after 4 s; a loaded machine (and Node's start-up)
  # can take longer. Raised to 60 s and 30 s for both runs alike, the tests
  # themselves unchanged.
  sed -i 's/^\$test_timeout = 5;/$test_timeout = 60;/' "$out/tests/test_driver.pl"
  sed -i 's/^\( *\)\$timeout and \$test_timeout = \$timeout;/\1$timeout and $test_timeout = ($timeout > 60 ? $timeout : 60);/' \
    "$out/tests/run_make_tests.pl"
  sed -i 's/^my \$timeout = 4;/my $timeout = 30;/' "$out/tests/thelp.pl"
  # -srcdir: the copy (gnumake.h, tests/thelp.pl, config-flags.pm).
  (cd "$out/tests" && perl ./run_make_tests.pl -srcdir "$out" -make "$wrapper" "${scripts[@]}") \
    > "$out/driver.log" 2>&1 || true
  # Failed subtests: the driver keeps NAME.diff (the first subtest) and
  # NAME.diff.N (subtest N+1) files; listed as NAME#SUBTEST.
  (cd "$out/tests/work" 2>/dev/null && find . -name '*.diff*' | sed -e 's|^\./||' |
    awk '{ if (match($0, /\.diff$/)) print substr($0, 1, RSTART - 1) "#1";
           else if (match($0, /\.diff\.[0-9]+$/)) print substr($0, 1, RSTART - 1) "#" (substr($0, RSTART + 6) + 1) }' |
    sort) > "$out/failed.txt" || true
}

# Per-script results: "cat/name ..... ok (N passed)" or "FAILED (P/T
# passed)", the verdict sometimes lines after the name (messages between).
summarize_log() { # LOG -> "script passed total" lines
  awk 'match($0, /^[a-z_A-Z0-9\/-]+ \.\.\.+/) { cur = $1 }
       cur != "" && match($0, /(ok|FAILED) +\([^)]*\)/) {
         v = substr($0, RSTART, RLENGTH); sub(/ +\(/, " ", v); sub(/\)$/, "", v);
         split(v, a, " ");
         if (a[1] == "ok") print cur, a[2], a[2];
         else { split(a[2], b, "/"); print cur, b[1], b[2] + 0 }
         cur = "" }' "$1"
}

results="$root/benchmarks/results"
head="# GNU make's test suite through mpmake\n\nTwo loopback agents (4 slots each); each make behind the same wrapper named \`make\`; mpmake with --mp-local='$local_list'. Run with \`make test-gnumake\` (or \`bash benchmarks/gnumake-suite.sh [4.3|4.4.1]\`); per-make timeouts raised to 60 s for both runs.\n"

[ -x "$root/build/mpmake-shim" ] || { say "run make build first"; exit 2; }
start_agent; h1="$agent_addr"
start_agent; h2="$agent_addr"
hosts="$h1,$h2"
say "agents at $hosts"

for v in "${versions[@]}"; do
  src="$(fetch_source "$v")"
  real="$(make_for "$v" "$src")"
  runs="$work/runs-$v"
  write_wrappers "$runs/wrap" "$real" "$hosts"
  say "make $v ($real): plain make"
  t0=$(date +%s)
  run_suite "$src" "$runs/wrap/plain/make" "$runs/plain"
  t1=$(date +%s)
  say "make $v: mpmake"
  run_suite "$src" "$runs/wrap/mpmake/make" "$runs/mpmake"
  t2=$(date +%s)
  summarize_log "$runs/plain/driver.log" | sort > "$runs/plain.txt"
  summarize_log "$runs/mpmake/driver.log" | sort > "$runs/mpmake.txt"
  echo "== make $v: per script (plain passed/total, mpmake passed/total)"
  join -a1 -e0 -o 0,1.2,1.3,2.2,2.3 "$runs/plain.txt" "$runs/mpmake.txt" |
    awk '{ mark = ($2 == $4 && $3 == $5) ? "ok  " : "DIFF"; printf "%s %-40s plain %3d/%-3d mpmake %3d/%-3d\n", mark, $1, $2, $3, $4, $5 }'
  # Subtests plain make passes and mpmake fails.
  comm -13 "$runs/plain/failed.txt" "$runs/mpmake/failed.txt" > "$runs/regressions.txt"
  read -r p_sub p_scr <<< "$(awk '{ s += $2; if ($2 == $3 && $3 > 0) n++ } END { print s+0, n+0 }' "$runs/plain.txt")"
  read -r m_sub m_scr <<< "$(awk '{ s += $2; if ($2 == $3 && $3 > 0) n++ } END { print s+0, n+0 }' "$runs/mpmake.txt")"
  total="$(awk '{ s += $3 } END { print s+0 }' "$runs/plain.txt")"
  nreg="$(wc -l < "$runs/regressions.txt")"
  echo "== make $v: plain make passes $p_sub of $total subtests ($p_scr scripts whole) in $((t1 - t0)) s;" \
       "mpmake passes $m_sub ($m_scr scripts whole) in $((t2 - t1)) s;" \
       "$nreg subtests pass under plain make and fail under mpmake${nreg:+:}"
  sed 's/^/   /' "$runs/regressions.txt"
  fails_plain="$(awk '$2 != $3 { print $1 " (" $2 "/" $3 ")" }' "$runs/plain.txt" | paste -sd, - | sed 's/,/, /g')"
  fails_mp="$(awk '$2 != $3 { print $1 " (" $2 "/" $3 ")" }' "$runs/mpmake.txt" | paste -sd, - | sed 's/,/, /g')"
  scripts_total="$(wc -l < "$runs/plain.txt")"
  md="\n## make $v\n\n| | subtests passed | scripts passed whole | time |\n|---|---|---|---|\n"
  md+="| plain make | $p_sub of $total | $p_scr of $scripts_total | $((t1 - t0)) s |\n| mpmake | $m_sub of $total | $m_scr of $scripts_total | $((t2 - t1)) s |\n"
  md+="\nScripts not passed whole: plain make: ${fails_plain:-none}; mpmake: ${fails_mp:-none}.\n"
  md+="\nSubtests plain make passes and mpmake fails: $nreg$(if [ "$nreg" -gt 0 ]; then printf '\n\n```\n%s\n```' "$(cat "$runs/regressions.txt")"; fi)\n"
  regs="$(sed 's/.*/"&"/' "$runs/regressions.txt" | paste -sd, -)"
  if [ ${#scripts[@]} -eq 0 ]; then
    mkdir -p "$results"
    printf '%b' "$md" > "$results/gnumake-suite-$v.md"
    printf '{"version":"%s","machine":"%s","subtests":%s,"scripts":%s,"plain":{"passed":%s,"scripts":%s,"seconds":%s},"mpmake":{"passed":%s,"scripts":%s,"seconds":%s},"regressions":[%s]}\n' \
      "$v" "$(uname -srm)" "$total" "$scripts_total" "$p_sub" "$p_scr" "$((t1 - t0))" "$m_sub" "$m_scr" "$((t2 - t1))" "$regs" \
      > "$results/gnumake-suite-$v.json"
    say "wrote $results/gnumake-suite-$v.{md,json}"
  fi
done

# The summary: every version run so far (each file written by a full run).
if [ ${#scripts[@]} -eq 0 ]; then
  { printf '%b' "$head"; for v in 4.3 4.4.1; do
      if [ -f "$results/gnumake-suite-$v.md" ]; then cat "$results/gnumake-suite-$v.md"; fi; done; } > "$results/gnumake-suite.md"
  say "wrote $results/gnumake-suite.md"
fi
