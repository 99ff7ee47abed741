#!/bin/bash
# Runs the public HTTP caching test suite (cache-tests.fyi) against orchardd
# as a forward proxy and scores it. Not part of `make test`: the suite is
# not a Debian package and CI reaches no GitHub.
#
#   tests/conformance/run.sh CACHE_TESTS_DIR [ORCHARDD] [test-id]
#
# CACHE_TESTS_DIR: a checkout of github.com/http-tests/cache-tests (scored
# at b55b8bd) with `npm i --omit=dev` run in it. Everything listens on
# 127.0.0.1: the suite's origin on 18000, orchardd on 18082, which reaches
# the origin as cache-tests.example through upstream.resolve. With a
# test-id, that one test runs and its exchange is printed.
set -u
CT=$(cd "$1" && pwd)
ORCHARDD=${2:-$(dirname "$0")/../../build/orchardd}
ID=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/orchard-cache-tests.XXXXXX)
cat > "$WORK/orchard.toml" <<TOML
[server]
listen = ["127.0.0.1:18082"]
log_level = "warn"
[storage]
dir = "$WORK/var"
cache_limit = "1GiB"
[upstream]
allow = ["cache-tests.example"]
resolve = { "cache-tests.example" = "127.0.0.1:18000" }
[apple]
os_feed_url = ""
TOML
CACHE_TESTS=$CT npm_config_protocol=http npm_config_port=18000 npm_config_pidfile=$WORK/origin.pid \
  node "$HERE/origin.mjs" > "$WORK/origin.log" 2>&1 &
ORIGIN=$!
"$ORCHARDD" --config "$WORK/orchard.toml" > "$WORK/orchardd.log" 2>&1 &
DAEMON=$!
trap 'kill $ORIGIN $DAEMON 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 50); do
  curl -s -o /dev/null http://127.0.0.1:18082/ && curl -s -o /dev/null http://127.0.0.1:18000/ && break
  sleep 0.1
done
cd "$CT"
CACHE_TESTS=$CT ORCHARD_PROXY=http://127.0.0.1:18082 npm_config_base=http://cache-tests.example \
  npm_package_config_id="$ID" node --no-warnings --import "$HERE/proxy.mjs" test-engine/cli.mjs > "$WORK/results.json"
if [ -n "$ID" ]; then cat "$WORK/results.json"; else CACHE_TESTS=$CT node "$HERE/score.mjs" "$WORK/results.json"; fi
echo "results: $WORK/results.json, logs: $WORK/orchardd.log"
