#!/usr/bin/env python3
"""Orchard end-to-end benchmark against nginx, all on 127.0.0.1.

Started by bench/e2e/run.sh (which installs what is missing and kills
whatever this script started, also on failure or Ctrl-C). Systems:

  origin        nginx serving generated files, access log (request, status, bytes)
  relay         relay.py: 100 Mbit/s WAN link in front of the origin
  orchard       build/orchardd, fresh storage.dir
  nginx-cache   nginx proxy_cache configured as lancache runs it
  nginx-direct  nginx serving the same files directly (the physical reference)
  nginx-direct-copy  the same with sendfile off (scenarios 2, 7: the reference is the faster of the two)
  nginx-dav     nginx taking PUTs into a temp dir (scenario 7: the publish reference)
  orchard-parent, orchard-child  two more orchardd, the child with the parent as its parent (scenario 11)

Environment:
  ORCHARD_BENCH_QUICK=1        one run per scenario, 3 s wrk, 100k objects in scenario 6
  ORCHARD_BENCH_RUNS=N         runs per scenario (default 3; quick: 1)
  ORCHARD_BENCH_INDEX_N=N      objects for scenario 6 (default 1000000; quick: 100000)
  ORCHARD_BENCH_SCENARIOS=1,2  only these scenarios (default all: 1,2,3,4,5,6,7,8,9,10,11)
  ORCHARD_BENCH_SCRAPE_RUNS=N  scenario 10: runs with and without the scraper, each (default 5)
  BUILD_DIR                    build directory (default build)

Modules beside this one: common.py (settings, processes, data), servers.py
(the systems and their start-up), clients.py (curl, wrk, range GET),
scenarios.py (the scenarios) and report.py (the table and the JSON facts);
this file runs the scenarios asked for and prints and stores the report.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import time

from common import BUILD, INDEX_N, PROCS, QUICK, RESULTS, RUNS, SCENARIOS, WRK_SECONDS, log, make_data
from servers import Env
from clients import warm
from scenarios import (Results, scenario_catalog, scenario_child_hit, scenario_cold, scenario_https, scenario_idle,
                       scenario_index, scenario_installs, scenario_large_hit, scenario_range, scenario_scrape,
                       scenario_small_hit)
from report import build_table, fmt, machine, print_table


def main():
    os.makedirs(RESULTS, exist_ok=True)
    for tool in ("nginx", "wrk", "curl", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (bench/e2e/run.sh installs it)")
    for exe in ("orchardd", "bench/orchard_micro_bench", "bench/orchard_bench_populate"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            sys.exit(f"{BUILD}/{exe} missing: build first (make build)")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    work = tempfile.mkdtemp(prefix=f"run-{stamp}-", dir=RESULTS)
    log(f"work dir {work}; {'QUICK mode, ' if QUICK else ''}{RUNS} run(s) per scenario; scenarios {sorted(SCENARIOS)}")
    sums = make_data()
    env = Env(work)
    R = Results()
    t_start = time.monotonic()
    ok = False
    try:
        env.start_origin()
        env.start_relay()
        env.start_direct()
        if 2 in SCENARIOS or 7 in SCENARIOS:
            env.start_direct_copy()
        if 7 in SCENARIOS:
            env.start_dav()
        env.start_cache(fresh=True)
        env.start_orchard(fresh=True)
        if 1 in SCENARIOS:
            scenario_small_hit(env, R)
        if 10 in SCENARIOS:
            scenario_scrape(env, R)
        if 5 in SCENARIOS:
            for run in range(RUNS):
                if 1 not in SCENARIOS and run == 0:
                    warm("orchard", env, "/f4k")
                    warm("nginx-cache", env, "/f4k")
                scenario_idle(env, R, run)
        if 2 in SCENARIOS:
            scenario_large_hit(env, R)
        if 3 in SCENARIOS:
            scenario_cold(env, R, sums)
        if 4 in SCENARIOS:
            scenario_range(env, R, sums)
        if 6 in SCENARIOS:
            scenario_index(env, R)
        if 7 in SCENARIOS:
            scenario_catalog(env, R, sums)
        if 8 in SCENARIOS:
            scenario_installs(env, R)
        if 9 in SCENARIOS:
            env.start_direct_https()
            scenario_https(env, R)
        if 11 in SCENARIOS:
            scenario_child_hit(env, R)
        ok = True
    finally:
        PROCS.stop_all()
        with open(env.orchard_stderr, errors="replace") as f:
            # The bench leaves catalog.base_url unset on purpose (package URLs
            # name the Host asked), so orchardd's start-up warning about it is expected;
            # the HTTPS certificate's fingerprint is printed at every start (scenario 9).
            olog = [l.rstrip() for l in f if l.strip() and not l.startswith("----") and "orchardd ready" not in l
                    and "catalog.base_url is not set" not in l and "SHA-256 fingerprint" not in l]
        if olog:
            R.note(f"orchardd logged {len(olog)} line(s) at warn or above, e.g.: " + " / ".join(olog[:5]))
    rows = build_table(R)
    table = print_table(rows)
    print()
    print(f"Orchard vs nginx, {time.strftime('%Y-%m-%d %H:%M')}, {RUNS} run(s) per scenario, medians"
          f"{' (QUICK mode)' if QUICK else ''}")
    print(table)
    targets = [r for r in rows if r["result"]]
    print()
    print("Targets:")
    for r in targets:
        print(f"  {r['result']:4}  {r['scenario']}: {r['metric']} {('(' + r['ratio_label'] + ' ' + fmt(r['ratio']) + ')') if r['ratio'] is not None and r['ratio_label'] else '= ' + fmt(r['orchard'])} target {r['target']}")
    if R.notes:
        print()
        print("Notes:")
        for n in R.notes:
            print(f"  - {n}")
    doc = {"timestamp": stamp, "quick": QUICK, "runs": RUNS, "wrk_seconds": WRK_SECONDS, "index_n": INDEX_N,
           "scenarios": sorted(SCENARIOS), "machine": machine(), "duration_s": time.monotonic() - t_start,
           "rows": rows, "raw": R.raw, "notes": R.notes, "complete": ok}
    path = os.path.join(RESULTS, f"{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\nJSON: {path}")
    shutil.rmtree(work, ignore_errors=True) if ok and not os.environ.get("ORCHARD_BENCH_KEEP") else None


if __name__ == "__main__":
    def on_signal(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        PROCS.stop_all()
        sys.exit(130)
