"""The end-to-end benchmark scenarios and their raw results.

Part of bench/e2e (run by bench.py): `Results` collects every raw sample and
note; each scenario_* function runs one scenario of bench/README.md (small
hit, large hit, idle connections / memory, cold coalescing, range on a miss,
index scale, catalog publish and download, installs, HTTPS, scrape cost, a
hit through a child's parent) against the systems in servers.py, for RUNS
runs.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

from common import (ADMIN_TOKEN, BUILD, CATALOG_BUNDLE_ID, CATALOG_FILE, CATALOG_PACKAGE, CATALOG_UPLOADS,
                    CLIENTS_COLD, DATA, DIRECT_REFS, FILES, HOST, IDLE_CONNS, INDEX_N, MANY_CLIENTS, MANY_SECONDS,
                    MiB, PROCS, QUICK, RANGE_FIRST, RANGE_LEN, ROOT, RUNS, SYSTEMS, WAN_HOST, WRK_SECONDS, cpu_seconds,
                    log, median, proc_status, tree_sum)
from clients import curl, parallel_curls, parse_wrk, range_get, warm
from report import fmt


# ---------------------------------------------------------------- scenarios

class Results:
    def __init__(self):
        self.raw = {}
        self.notes = []

    def add(self, key, system, value):
        self.raw.setdefault(key, {}).setdefault(system, []).append(value)

    def med(self, key, system):
        return median(self.raw.get(key, {}).get(system, []))

    def note(self, msg):
        log("NOTE: " + msg)
        self.notes.append(msg)


def scenario_small_hit(env, R):
    log(f"scenario 1: small hit, wrk -t2 -c64 -d{WRK_SECONDS}s, {RUNS} run(s)")
    for s in SYSTEMS:
        warm(s, env, "/f4k")
    for run in range(RUNS):
        for s in SYSTEMS:
            out = subprocess.run(["wrk", "-t2", "-c64", f"-d{WRK_SECONDS}s", "--latency", "-H", f"Host: {HOST}",
                                  f"http://127.0.0.1:{env.port(s)}/f4k"], capture_output=True, text=True).stdout
            w = parse_wrk(out)
            log(f"  run {run + 1} {s}: {w['rps']} req/s, p99 {w['p99_ms']} ms {w['errors']}")
            if w["non2xx"] or w["errors"]:
                R.note(f"scenario 1 {s} run {run + 1}: non-2xx {w['non2xx']} {w['errors']}")
            R.add("s1.rps", s, w["rps"])
            R.add("s1.p99_ms", s, w["p99_ms"])


SCRAPE_RUNS = int(os.environ.get("ORCHARD_BENCH_SCRAPE_RUNS", "5"))  # alternating pairs: at least five each
SCRAPE_SECONDS = 3 if QUICK else 5  # per wrk run
SCRAPE_EVERY = 0.1  # seconds between scrapes (Prometheus' usual 15 s, 150 times over)


class Scraper:
    """GET /metrics every SCRAPE_EVERY s on one keep-alive connection (as
    Prometheus scrapes), from a thread, until stop(); counts the scrapes and
    any that failed."""

    def __init__(self, port):
        import http.client
        import threading
        self.port = port
        self.count = 0
        self.last_bytes = 0
        self.failed = []
        self._stop = threading.Event()
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self._conn.request("GET", "/metrics", headers={"Host": f"127.0.0.1:{self.port}"})
                r = self._conn.getresponse()
                body = r.read()
                self.last_bytes = len(body)
                if r.status != 200 or b"orchard_responses_total" not in body:
                    self.failed.append(r.status)
                self.count += 1
            except OSError as e:
                self.failed.append(str(e))
                self._conn.close()
            next_at += SCRAPE_EVERY
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self):
        self._stop.set()
        self._thread.join(15)
        self._conn.close()


def scenario_scrape(env, R):
    """Scenario 10: what scraping /metrics every 100 ms costs scenario 1's
    small hit. Runs without and with a scraper alternate (the order flips
    each pair, so drift on a shared machine hits both), SCRAPE_RUNS of each,
    SCRAPE_SECONDS each. The figure is the median over pairs of with /
    without (a pair's two runs are seconds apart: slow drift in the box's
    other load cancels), beside the medians of each side. First, with no
    load, orchardd's CPU time per scrape (/proc, over SCRAPE_SECONDS of
    scraping alone): what a scrape costs whatever the noise."""
    log(f"scenario 10: small hit with and without a /metrics scrape every {SCRAPE_EVERY * 1000:.0f} ms, "
        f"wrk -t2 -c64 -d{SCRAPE_SECONDS}s, {SCRAPE_RUNS} run(s) each, alternating")
    warm("orchard", env, "/f4k")
    port = env.port("orchard")
    pid = env.pid("orchard")
    idle0 = sum(cpu_seconds(pid))
    time.sleep(SCRAPE_SECONDS)
    idle = sum(cpu_seconds(pid)) - idle0
    scraper = Scraper(port).start()
    busy0 = sum(cpu_seconds(pid))
    time.sleep(SCRAPE_SECONDS)
    busy = sum(cpu_seconds(pid)) - busy0
    scraper.stop()
    if scraper.count:
        per = max(0.0, busy - idle) / scraper.count * 1000
        log(f"  orchardd CPU with no load: {idle * 1000:.0f} ms idle, {busy * 1000:.0f} ms while scraped "
            f"{scraper.count} times in {SCRAPE_SECONDS} s: {per:.2f} ms per scrape")
        R.add("s10.cpu_ms_per_scrape", "with", per)
        R.add("s10.scrape_bytes", "with", scraper.last_bytes)
    for run in range(SCRAPE_RUNS):
        pair = {}
        for scraping in ((False, True) if run % 2 == 0 else (True, False)):
            scraper = Scraper(port).start() if scraping else None
            cpu0 = sum(cpu_seconds(pid))
            try:
                out = subprocess.run(["wrk", "-t2", "-c64", f"-d{SCRAPE_SECONDS}s", "--latency", "-H",
                                      f"Host: {HOST}", f"http://127.0.0.1:{port}/f4k"],
                                     capture_output=True, text=True).stdout
            finally:
                cpu = sum(cpu_seconds(pid)) - cpu0
                if scraper:
                    scraper.stop()
            w = parse_wrk(out)
            what = "with" if scraping else "without"
            extra = f", {scraper.count} scrapes" if scraper else ""
            log(f"  run {run + 1} {what} scraper: {w['rps']} req/s, p99 {w['p99_ms']} ms{extra}")
            if w["non2xx"] or w["errors"] or w["rps"] is None:
                R.note(f"scenario 10 {what} run {run + 1}: non-2xx {w['non2xx']} {w['errors']}")
            if scraper and (scraper.failed or scraper.count < SCRAPE_SECONDS / SCRAPE_EVERY * 0.8):
                R.note(f"scenario 10 run {run + 1}: {scraper.count} scrapes, failed: {scraper.failed[:3]}")
            R.add("s10.rps", what, w["rps"])
            R.add("s10.p99_ms", what, w["p99_ms"])
            pair[what] = w["rps"]
            if w["rps"]:
                # orchardd's CPU per request: what the scrapes add, less blurred by the box's other load.
                R.add("s10.cpu_us_per_req", what, cpu / (w["rps"] * SCRAPE_SECONDS) * 1e6)
            if scraper:
                R.add("s10.scrapes", "with", scraper.count)
        if pair.get("with") and pair.get("without"):
            R.add("s10.pair_ratio", "with", pair["with"] / pair["without"])
            log(f"  pair {run + 1}: with / without = {pair['with'] / pair['without']:.3f}")


def scenario_large_hit(env, R):
    log(f"scenario 2: large hit (1 GiB), 1, 8 and {MANY_CLIENTS} concurrent downloads "
        f"({MANY_CLIENTS}: each stopped after {MANY_SECONDS} s), {RUNS} run(s)")
    systems = SYSTEMS + ("nginx-direct-copy",)
    for s in systems:
        warm(s, env, "/f1g")
    # Restart the caches (state kept) so that VmHWM covers this scenario only.
    env.stop_orchard()
    env.start_orchard(fresh=False)
    env.stop_cache()
    env.start_cache(fresh=False)
    R.add("s5.rss_base_mib", "orchard", proc_status(env.pid("orchard"), "VmRSS") / MiB)
    for s in ("orchard", "nginx-cache"):
        warm(s, env, "/f1g")  # a hit after the restart (also proves the store survived it)
    for run in range(RUNS):
        for conc in (1, 8, MANY_CLIENTS):
            many = conc == MANY_CLIENTS
            # nginx-cache is left out of the many-clients case (time: it is not the reference).
            targets = {s: ("/f1g", HOST) for s in systems if not (many and s == "nginx-cache")}
            download_round(env, R, "s2", run, conc, targets, None if many else FILES["f1g"],
                           MANY_SECONDS if many else 900)
    R.add("s5.peak_s2_mib", "orchard", proc_status(env.pid("orchard"), "VmHWM") / MiB)
    R.add("s5.peak_s2_mib", "nginx-cache", tree_sum(env.pid("nginx-cache"), "VmHWM") / MiB)


def timed_downloads(env, R, key, run, conc, system, path, host, size, timeout, scheme="http"):
    """`conc` simultaneous downloads of `path` from `system`, checked (status
    and, unless `size` is None, the full size); adds and returns GB/s (bytes
    received / time until the last one is done) under f"{key}.gbs_{conc}"."""
    wall, res = parallel_curls(env.port(system), path, conc, host, timeout=timeout, scheme=scheme)
    if size is None:
        bad = [r for r in res if r["code"] != 200 or r["rc"] not in (0, 28)]
    else:
        bad = [r for r in res if r["code"] != 200 or r["size"] != size]
    if bad:
        R.note(f"scenario {key[1:]} {system} x{conc}: {len(bad)} bad downloads: {bad[0]}")
    gbs = sum(r["size"] for r in res) / wall / 1e9
    log(f"  run {run + 1} {system} x{conc}: {gbs:.2f} GB/s ({wall:.2f} s)")
    R.add(f"{key}.gbs_{conc}", system, gbs)
    return gbs


def download_round(env, R, key, run, conc, targets, size, timeout=900):
    """`conc` simultaneous downloads from each of `targets` (system -> (path,
    Host)), one system after the other. Adds GB/s (bytes received / time
    until the last one is done) under f"{key}.gbs_{conc}", and Orchard / the
    faster nginx direct (sendfile on or off) of this same round under
    f"{key}.ratio_best_{conc}". `size` None: the downloads are stopped by
    `timeout`, so only the status and curl's exit are checked."""
    got = {}
    for s, (path, host) in targets.items():
        got[s] = timed_downloads(env, R, key, run, conc, s, path, host, size, timeout)
    # The ratio that counts: against the faster nginx direct of this same round.
    best = max(got.get(d) or 0 for d in DIRECT_REFS)
    if best and got.get("orchard"):
        R.add(f"{key}.ratio_best_{conc}", "orchard", got["orchard"] / best)
        log(f"  run {run + 1} x{conc}: orchard / faster nginx direct = {got['orchard'] / best:.3f}")


def scenario_https(env, R):
    """Scenario 9: the same hits over HTTPS. Orchard's tls.listen and nginx
    serving the files itself over HTTPS, both with one EC P-256 certificate
    and TLS in user space (this kernel has no kTLS); Orchard over plain HTTP
    in the same rounds, for what TLS costs it."""
    systems = (("orchard-https", "https"), ("nginx-direct-https", "https"), ("orchard", "http"))
    log(f"scenario 9: HTTPS small hit (wrk -t2 -c64 -d{WRK_SECONDS}s, reused TLS connections) and large hit "
        f"(1 GiB, 1 and 8 downloads), {RUNS} run(s)")
    warm("orchard", env, "/f4k")
    warm("orchard", env, "/f1g")
    for run in range(RUNS):
        for s, scheme in systems:
            out = subprocess.run(["wrk", "-t2", "-c64", f"-d{WRK_SECONDS}s", "--latency", "-H", f"Host: {HOST}",
                                  f"{scheme}://127.0.0.1:{env.port(s)}/f4k"], capture_output=True, text=True).stdout
            w = parse_wrk(out)
            log(f"  run {run + 1} {s}: {w['rps']} req/s, p99 {w['p99_ms']} ms {w['errors']}")
            if w["non2xx"] or w["errors"] or w["rps"] is None:
                R.note(f"scenario 9 {s} run {run + 1}: non-2xx {w['non2xx']} {w['errors']} {out[-300:]}")
            R.add("s9.rps", s, w["rps"])
            R.add("s9.p99_ms", s, w["p99_ms"])
        if R.raw["s9.rps"].get("orchard-https") and R.raw["s9.rps"].get("nginx-direct-https"):
            o, n = R.raw["s9.rps"]["orchard-https"][-1], R.raw["s9.rps"]["nginx-direct-https"][-1]
            if o and n:
                R.add("s9.rps_ratio", "orchard", o / n)
        for conc in (1, 8):
            got = {}
            for s, scheme in systems:
                got[s] = timed_downloads(env, R, "s9", run, conc, s, "/f1g", HOST, FILES["f1g"], 900, scheme)
            if got.get("orchard-https") and got.get("nginx-direct-https"):
                R.add(f"s9.ratio_{conc}", "orchard", got["orchard-https"] / got["nginx-direct-https"])


def scenario_idle(env, R, run):
    log(f"scenario 5: {IDLE_CONNS} idle keep-alive connections (run {run + 1})")
    for s in ("orchard", "nginx-cache"):
        pid = env.pid(s)
        before = tree_sum(pid, "VmRSS") if s != "orchard" else proc_status(pid, "VmRSS")
        src = f"127.0.{10 + run}.{1 if s == 'orchard' else 2}"
        p = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "e2e", "idle_conns.py"),
                              str(env.port(s)), HOST, "/f4k", str(IDLE_CONNS), src],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline().strip()
        opened = int(line.split()[1]) if line.startswith("open") else 0
        time.sleep(1.0)
        after = tree_sum(pid, "VmRSS") if s != "orchard" else proc_status(pid, "VmRSS")
        p.stdin.write("\n")
        p.stdin.flush()
        line = p.stdout.readline().strip()
        still = int(line.split()[1]) if line.startswith("still_open") else 0
        p.stdin.close()
        err = p.stderr.read()
        p.wait()
        if opened != IDLE_CONNS or still != IDLE_CONNS:
            R.note(f"scenario 5 {s}: {opened}/{IDLE_CONNS} connections answered, {still} still open at measurement "
                   f"{err.strip()[:200]}")
        log(f"  {s}: RSS {before / MiB:.1f} MiB -> {after / MiB:.1f} MiB with {opened} connections ({still} still open)")
        R.add("s5.idle_rss_mib", s, after / MiB)
        R.add("s5.idle_conns_ok", s, min(opened, still))
        time.sleep(0.5)


def scenario_cold(env, R, sums):
    log(f"scenario 3: cold coalescing, {CLIENTS_COLD} clients, 100 MiB through the 100 Mbit/s relay, {RUNS} run(s)")
    shadir = os.path.join(env.work, "sha")
    for run in range(RUNS):
        # One client over the same link, no cache: the reference time.
        r = curl(env.ports["relay"], "/f100m", WAN_HOST)
        if r["code"] != 200 or r["size"] != FILES["f100m"]:
            R.note(f"scenario 3: direct download through the relay failed: {r}")
        R.add("s3.link_s", "link", r["total"])
        log(f"  run {run + 1} one client through the link: {r['total']:.2f} s")
        for s in ("orchard", "nginx-cache"):
            if s == "orchard":
                env.stop_orchard()
                env.start_orchard(fresh=True)
            else:
                env.stop_cache()
                env.start_cache(fresh=True)
            shutil.rmtree(shadir, ignore_errors=True)
            os.makedirs(shadir)
            off = env.origin_log_offset()
            wall, res = parallel_curls(env.port(s), "/f100m", CLIENTS_COLD, WAN_HOST, sha_dir=shadir)
            time.sleep(1.0)  # let the origin log its line
            reqs, sent = env.origin_requests(off, "/f100m")
            good = sum(1 for x in res if x["code"] == 200 and x.get("sha") == sums["f100m"])
            if good != CLIENTS_COLD:
                bad = [x for x in res if not (x["code"] == 200 and x.get("sha") == sums["f100m"])]
                R.note(f"scenario 3 {s} run {run + 1}: {CLIENTS_COLD - good} bodies wrong or incomplete, e.g. {bad[0]}")
            times = sorted(x["time"] for x in res)
            log(f"  run {run + 1} {s}: last done {wall:.2f} s (first {times[0]:.2f} s), origin {reqs} request(s) "
                f"{sent} bytes, {good}/{CLIENTS_COLD} verified")
            R.add("s3.last_s", s, wall)
            R.add("s3.first_s", s, times[0])
            R.add("s3.origin_reqs", s, reqs)
            R.add("s3.origin_bytes_ratio", s, sent / FILES["f100m"])
            R.add("s3.verified", s, good)
            if s == "orchard":
                R.add("s5.peak_s3_mib", s, proc_status(env.pid("orchard"), "VmHWM") / MiB)
            else:
                R.add("s5.peak_s3_mib", s, tree_sum(env.pid("nginx-cache"), "VmHWM") / MiB)
    shutil.rmtree(shadir, ignore_errors=True)


def scenario_range(env, R, sums):
    log(f"scenario 4: range on a miss, bytes={RANGE_FIRST}-{RANGE_FIRST + RANGE_LEN - 1} of the 1 GiB object, "
        f"{RUNS} run(s)")
    for run in range(RUNS):
        for s in ("origin", "orchard", "nginx-cache"):
            if s == "orchard":
                env.stop_orchard()
                env.start_orchard(fresh=True)
            elif s == "nginx-cache":
                env.stop_cache()
                env.start_cache(fresh=True)
            r = range_get(env.port(s), "/f1g", HOST, RANGE_FIRST, RANGE_FIRST + RANGE_LEN - 1)
            right = r["size"] == RANGE_LEN and r["sha"] == sums[f"f1g@{RANGE_FIRST}+{RANGE_LEN}"]
            ok = r["code"] == 206 and right
            log(f"  run {run + 1} {s}: HTTP {r['code']}, range bytes {r['size']}, ttfb {fmt(r['ttfb'], 4)} s, "
                f"last byte {fmt(r['total'], 4)} s, {'correct 206 range' if ok else 'NOT a 206 with the range'}"
                f"{' (bytes right)' if right and not ok else ''} {r['error']}")
            if not ok:
                R.note(f"scenario 4 {s} run {run + 1}: answered HTTP {r['code']} instead of a 206 with the range; "
                       f"times are until the requested bytes arrived within that answer {r['error']}")
            R.add("s4.ttfb_s", s, r["ttfb"])
            R.add("s4.total_s", s, r["total"])
            R.add("s4.correct", s, 1 if ok else 0)


def scenario_index(env, R):
    n = INDEX_N
    state = os.path.join(DATA, f"index-{n}")
    log(f"scenario 6: index scale with {n} objects (store kept in {state} for later runs)")
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(BUILD, "bench", "orchard_bench_populate"), state, str(n)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"populate failed: {r.stderr}")
    info = json.loads(r.stdout)
    log(f"  populated: {info} in {time.monotonic() - t0:.1f} s")
    R.add("s6.populate_s", "orchard", info["total_s"] if info["had"] < n else None)
    # Per-object memory: RSS at ready with N objects minus RSS at ready with
    # none, over N (issue 9), before any hit; and again once the background
    # thread has built the eviction policy (its nodes are per object too).
    empty = os.path.join(env.work, "index-empty")
    base = []
    for run in range(RUNS):
        env.stop_orchard()
        if os.path.exists(empty):
            shutil.rmtree(empty)
        env.start_orchard(fresh=False, state=empty)
        base.append(proc_status(env.pid("orchard"), "VmRSS"))
    base_rss = sorted(base)[len(base) // 2]
    R.add("s6.rss_empty_mib", "orchard", base_rss / MiB)
    for run in range(RUNS):
        env.stop_orchard()
        _, startup = env.start_orchard(fresh=False, state=state)
        rss_bytes = proc_status(env.pid("orchard"), "VmRSS")
        rss = rss_bytes / MiB
        R.add("s6.bytes_per_object", "orchard", (rss_bytes - base_rss) / n)
        time.sleep(3)  # policy built (a few hundred ms for 1 M), reconciliation under way
        R.add("s6.bytes_per_object_settled", "orchard", (proc_status(env.pid("orchard"), "VmRSS") - base_rss) / n)
        objects = None
        try:
            res = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{env.ports['orchard']}/api/v1/status"],
                                 capture_output=True, text=True, timeout=30)
            objects = json.loads(res.stdout).get("Objects")
        except (ValueError, subprocess.TimeoutExpired):
            pass
        log(f"  run {run + 1}: orchardd ready after {startup:.3f} s with {objects} objects, RSS {rss:.0f} MiB")
        if objects != n:
            R.note(f"scenario 6: orchardd reports {objects} objects, expected {n}")
        R.add("s6.startup_s", "orchard", startup)
        R.add("s6.rss_mib", "orchard", rss)
    env.stop_orchard()
    env.start_orchard(fresh=True)  # leave the index store alone
    # Lookup latency: the micro benchmark on the same store.
    env_vars = dict(os.environ, ORCHARD_BENCH_INDEX_N=str(n), ORCHARD_BENCH_INDEX_DIR=state)
    out = os.path.join(env.work, "lookup.json")
    r = subprocess.run([os.path.join(BUILD, "bench", "orchard_micro_bench"), "--benchmark_filter=BM_StoreLookup",
                        f"--benchmark_repetitions={RUNS}", "--benchmark_min_time=0.5" if not QUICK else
                        "--benchmark_min_time=0.1", "--benchmark_format=json", f"--benchmark_out={out}"],
                       env=env_vars, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"micro bench failed: {r.stderr[-2000:]}")
    with open(out) as f:
        js = json.load(f)
    for b in js["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        if b.get("error_occurred"):
            R.note(f"scenario 6: {b['name']}: {b.get('error_message', 'error')}")
            continue
        if b["name"].startswith("BM_StoreLookupLatency/1") and "p99_us" in b:
            # 1 Ki hot objects: the record cache answers (a repeated hit)
            R.add("s6.lookup_p99_us", "orchard", b["p99_us"])
            R.add("s6.lookup_p50_us", "orchard", b["p50_us"])
        elif b["name"].startswith("BM_StoreLookupLatency/0") and "p99_us" in b:
            # random objects of the whole store: the record is read from RocksDB
            R.add("s6.cold_lookup_p99_us", "orchard", b["p99_us"])
            R.add("s6.cold_lookup_p50_us", "orchard", b["p50_us"])
        elif b["name"] == "BM_StoreLookupHit/threads:1" and "items_per_second" in b:
            R.add("s6.lookup_mops", "orchard", b["items_per_second"] / 1e6)
    log(f"  lookup p50 {R.med('s6.lookup_p50_us', 'orchard')} us, p99 {R.med('s6.lookup_p99_us', 'orchard')} us; "
        f"first hit (RocksDB read) p50 {R.med('s6.cold_lookup_p50_us', 'orchard')} us, "
        f"p99 {R.med('s6.cold_lookup_p99_us', 'orchard')} us; "
        f"{R.med('s6.bytes_per_object', 'orchard')} bytes/object at ready")


def delete_version(env, version):
    """DELETE of a published version of the bench package; None or the problem."""
    d = curl(env.port("orchard"), f"/api/v1/packages/{CATALOG_PACKAGE}/{version}", f"127.0.0.1:{env.port('orchard')}",
             ("-X", "DELETE", "-H", f"Authorization: Bearer {ADMIN_TOKEN}"))
    return None if d["code"] in (200, 204) else f"DELETE of version {version} answered {d['code']}"


def publish_once(env, s, version, sums, keep):
    """One timed PUT of CATALOG_FILE to `s` (orchard: the catalog's publish
    route; nginx-dav: /dav/), checked (a 201; Orchard's answer names the
    file's size and SHA-256) and removed afterwards, unless `keep` (Orchard
    only). Returns (seconds, server (user, system) CPU seconds, the
    package's /pkgs/ path from Orchard's answer, problem or None)."""
    name, size = CATALOG_FILE, FILES[CATALOG_FILE]
    host = f"127.0.0.1:{env.port(s)}"
    if s == "orchard":
        path = f"/api/v1/packages/{CATALOG_PACKAGE}/{version}/{name}?bundle_id={CATALOG_BUNDLE_ID}"
        extra = ("-H", f"Authorization: Bearer {ADMIN_TOKEN}", "-H", f"X-Checksum-Sha256: {sums[name]}")
    else:
        path, extra = f"/dav/{version}/{name}", ()
    answer = os.path.join(env.work, "publish-answer.json")
    # The previous upload's dirty pages (nginx never fsyncs) are written
    # now, not while this upload is timed.
    os.sync()
    cpu = cpu_seconds(env.pid(s))
    r = curl(env.port(s), path, host, ("-T", os.path.join(DATA, "files", name), "-H", "Expect: 100-continue", *extra),
             out=answer)
    cpu = tuple(b - a for a, b in zip(cpu, cpu_seconds(env.pid(s))))
    with open(answer, errors="replace") as f:
        body = f.read()
    if r["code"] != 201:
        return None, cpu, None, f"answered {r['code']} {r['error']} {body[:200]}"
    if s == "nginx-dav":
        stored = os.path.join(env.dav_root, "dav", version, name)
        got = os.path.getsize(stored)
        os.unlink(stored)
        return r["total"], cpu, None, None if got == size else f"stored {got} bytes of {size}"
    j = json.loads(body)
    if not keep and (problem := delete_version(env, version)):
        return None, cpu, None, problem
    if j.get("size") != size or j.get("sha256") != sums[name]:
        return None, cpu, None, f"answer names another file: {body[:200]}"
    return r["total"], cpu, urllib.parse.urlsplit(j["url"]).path, None


def scenario_catalog(env, R, sums):
    """Publish throughput (PUT of CATALOG_FILE to orchardd's catalog against
    nginx dav, CATALOG_UPLOADS uploads each per run, alternating), then the
    published package downloaded by 1 and 8 clients against nginx direct
    serving the same file (sendfile on and off, as in scenario 2).

    Every upload but Orchard's last of a run is removed right after it
    (that one is the package the run downloads, deleted before the next
    run's uploads), so each upload writes into page-cache memory the one
    before it freed: on this VM a first write into memory the guest has not
    touched lately costs about 10x the system time (3.3 s against 0.25 s
    for 1 GiB with dd). For the same reason one untimed PUT to nginx dav
    comes first. Removing Orchard's versions also means no upload repeats
    the bytes of a published blob (that would be a different, deduplicated
    commit)."""
    name, size = CATALOG_FILE, FILES[CATALOG_FILE]
    log(f"scenario 7: catalog: publish {size // MiB} MiB ({CATALOG_UPLOADS} PUTs each, orchard vs nginx dav), "
        f"then 1 and 8 downloads of the package vs nginx direct, {RUNS} run(s)")
    with open(os.path.join(DATA, "files", name), "rb") as f:  # the uploads read it from the page cache
        while f.read(8 * MiB):
            pass
    shadir = os.path.join(env.work, "sha-catalog")
    os.makedirs(shadir, exist_ok=True)
    if problem := publish_once(env, "nginx-dav", "bench-prime", sums, keep=False)[3]:
        R.note(f"scenario 7 nginx-dav: the untimed first PUT: {problem}")
    kept = None  # (version, /pkgs/ path) of the run's last Orchard upload, which its downloads use
    for run in range(RUNS):
        if kept and (problem := delete_version(env, kept[0])):
            R.note(f"scenario 7: {problem}")
        kept = None
        mbs = {"nginx-dav": [], "orchard": []}
        for i in range(CATALOG_UPLOADS):
            version = f"bench-{run}-{i}"
            for s in mbs:
                last = s == "orchard" and i == CATALOG_UPLOADS - 1
                secs, cpu, url, problem = publish_once(env, s, version, sums, keep=last)
                if problem:
                    R.note(f"scenario 7 {s} run {run + 1} PUT {version}: {problem}")
                    continue
                kept = (version, url) if last else kept
                mbs[s].append(size / secs / 1e6)
                R.add("s7.publish_mbs", s, mbs[s][-1])
                R.add("s7.publish_user_s_per_gib", s, cpu[0] / (size / (1 << 30)))
                R.add("s7.publish_sys_s_per_gib", s, cpu[1] / (size / (1 << 30)))
                log(f"  run {run + 1} {s} PUT {version}: {mbs[s][-1]:.0f} MB/s ({secs:.2f} s; server CPU "
                    f"{cpu[0]:.2f} s user, {cpu[1]:.2f} s system)")
        if mbs["orchard"] and mbs["nginx-dav"]:
            rv = median(mbs["orchard"]) / median(mbs["nginx-dav"])
            R.add("s7.publish_ratio", "orchard", rv)
            log(f"  run {run + 1}: publish orchard / nginx dav (medians of {CATALOG_UPLOADS}) = {rv:.3f}")
        if kept is None:
            R.note(f"scenario 7 run {run + 1}: nothing published, no downloads measured")
            continue
        # Warm page cache for both: one read of each before timing, each
        # body checked against the file's SHA-256.
        targets = {"orchard": (kept[1], f"127.0.0.1:{env.port('orchard')}")}
        targets.update({d: (f"/{name}", HOST) for d in DIRECT_REFS})
        for s, (path, host) in targets.items():
            _, res = parallel_curls(env.port(s), path, 1, host, sha_dir=shadir)
            if res[0]["code"] != 200 or res[0]["sha"] != sums[name]:
                R.note(f"scenario 7 {s}: warm-up download of {path} wrong: {res[0]}")
        for conc in (1, 8):
            download_round(env, R, "s7", run, conc, targets, size)
    shutil.rmtree(shadir, ignore_errors=True)


def scenario_installs(env, R):
    """Scenario 8 (issue 11): the installs answer for one device with 10,000
    devices and 500 package versions, through the micro benchmark
    BM_InstallsFor (the catalog's and the fleet store's in-memory views, no
    HTTP), which reports p50/p99 of wall and thread-CPU time per call."""
    exe = os.path.join(BUILD, "bench", "orchard_micro_bench")
    for run in range(RUNS):
        r = subprocess.run([exe, "--benchmark_filter=BM_InstallsFor", "--benchmark_min_time=2",
                            "--benchmark_format=json"], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"orchard_micro_bench failed: {r.stderr[-2000:]}")
        data = json.loads(r.stdout)
        b = [x for x in data.get("benchmarks", []) if x.get("name", "").startswith("BM_InstallsFor")][0]
        log(f"  run {run + 1}: installs p50 {b.get('p50_us')} us, p99 {b.get('p99_us')} us "
            f"(cpu p99 {b.get('cpu_p99_us')} us)")
        for k in ("p50_us", "p99_us", "cpu_p99_us"):
            R.add(f"s8.{k}", "orchard", b.get(k))


CHILD_TTFB_N = 10 if QUICK else 20  # scenario 11: small-object pairs per run (direct hit, child miss)


def purge_box(env, system, path=None):
    """POST /api/v1/purge to an orchardd box: of http://HOST<path>, or of
    everything (path None); None or the problem."""
    body = json.dumps({"url": f"http://{HOST}{path}"} if path else {"all": True})
    r = curl(env.port(system), "/api/v1/purge", f"127.0.0.1:{env.port(system)}",
             ("-X", "POST", "-H", f"Authorization: Bearer {ADMIN_TOKEN}", "-H", "Content-Type: application/json",
              "--data", body))
    # 404: nothing was stored under that URL (the child's first request of a run).
    return None if r["code"] in (200, 404) else f"purge of {path or 'everything'} at {system} answered {r['code']} {r['error']}"


def cache_status_entries(headers):
    """Every Cache-Status member of a response head (curl -D text), in order:
    several field lines or one comma list alike (RFC 9211: the origin's side
    first, the answering cache last)."""
    out = []
    for line in headers.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "cache-status":
            out += [m.strip() for m in v.split(",") if m.strip()]
    return out


def scenario_child_hit(env, R):
    """Scenario 11 (issue 15): a hit through a child whose parent holds the
    object. A parent orchardd holding the 4 KiB and the 1 GiB object and a
    child orchardd with it as its only parent, both fresh; each request at
    the child follows a purge of the child, so it misses there and hits at
    the parent. Against the same request answered directly by the parent
    (a hit), alternating, and against the parent's own miss from the origin
    (the object purged at the parent first: what one box's miss from a fast origin costs,
    the child's work without the hop). 4 KiB: TTFB, median of CHILD_TTFB_N
    per run and kind; 1 GiB: TTFB and GB/s of one download of each kind per
    run. Every answer is checked: 200, full size, Cache-Status (a direct
    hit; for the child the parent's hit first and its own miss last)."""
    log(f"scenario 11: hit through a child whose parent holds the object: 4 KiB TTFB ({CHILD_TTFB_N} per run and "
        f"kind), 1 GiB TTFB and GB/s: child (purged each time) vs a direct parent hit vs the parent's own miss, "
        f"{RUNS} run(s)")
    env.start_box("orchard-parent")
    env.start_box("orchard-child", parents=[f"127.0.0.1:{env.port('orchard-parent')}"])
    try:
        warm("orchard-parent", env, "/f4k")
        warm("orchard-parent", env, "/f1g")
        bad = []

        def one(kind, path, size):
            """kind: "direct" (a hit at the parent), "child" (a miss at the
            purged child, a hit at its parent) or "miss" (a miss at the
            purged parent, from the origin; the parent holds it again after)."""
            system = "orchard-child" if kind == "child" else "orchard-parent"
            if kind != "direct" and (problem := purge_box(env, system, path)):
                bad.append(problem)
            r = curl(env.port(system), path, HOST)
            cs = cache_status_entries(r["headers"])
            if r["code"] != 200 or r["size"] != size:
                bad.append(f"{kind} {path}: HTTP {r['code']}, {r['size']} bytes {r['error']}")
            elif kind == "direct" and not (cs and "hit" in cs[-1]):
                bad.append(f"direct {path}: not a hit at the parent: {cs}")
            elif kind == "child" and not (len(cs) >= 2 and "hit" in cs[0] and "fwd=miss" in cs[-1]):
                bad.append(f"child {path}: not a child's miss on a parent's hit: Cache-Status {cs}")
            elif kind == "miss" and not (len(cs) == 1 and "fwd=miss" in cs[0]):
                bad.append(f"miss {path}: not the parent's own miss: Cache-Status {cs}")
            if kind == "miss":
                warm("orchard-parent", env, path)  # stored again (visible once its last byte is on disk)
            return r

        for run in range(RUNS):
            ttfb = {"direct": [], "child": [], "miss": []}
            for i in range(CHILD_TTFB_N):
                for kind in (("direct", "child", "miss") if i % 2 == 0 else ("child", "direct", "miss")):
                    r = one(kind, "/f4k", FILES["f4k"])
                    if r["ttfb"] is not None:
                        ttfb[kind].append(r["ttfb"] * 1000)
            med = {k: median(v) for k, v in ttfb.items()}
            for k, v in med.items():
                R.add("s11.ttfb_4k_ms", k, v)
            if med["direct"] and med["child"]:
                R.add("s11.ttfb_4k_ratio", "child", med["child"] / med["direct"])
            if med["miss"] and med["child"]:
                R.add("s11.ttfb_4k_ratio_miss", "child", med["child"] / med["miss"])
            log(f"  run {run + 1} 4 KiB TTFB medians: direct parent hit {fmt(med['direct'], 4)} ms, through the child "
                f"{fmt(med['child'], 4)} ms, the parent's own miss {fmt(med['miss'], 4)} ms")
            got = {}
            for kind in (("direct", "child", "miss") if run % 2 == 0 else ("child", "direct", "miss")):
                r = one(kind, "/f1g", FILES["f1g"])
                if r["total"] and r["code"] == 200 and r["size"] == FILES["f1g"]:
                    got[kind] = (r["size"] / r["total"] / 1e9, r["ttfb"] * 1000)
                    R.add("s11.gbs_1g", kind, got[kind][0])
                    R.add("s11.ttfb_1g_ms", kind, got[kind][1])
            for ref in ("direct", "miss"):
                if ref in got and "child" in got:
                    R.add(f"s11.gbs_1g_ratio_{ref}", "child", got["child"][0] / got[ref][0])
                    R.add(f"s11.ttfb_1g_ratio_{ref}", "child", got["child"][1] / got[ref][1])
            log(f"  run {run + 1} 1 GiB: " + ", ".join(f"{k} {v[0]:.2f} GB/s (TTFB {v[1]:.2f} ms)"
                                                       for k, v in got.items()))
        if problem := purge_box(env, "orchard-child"):
            bad.append(problem)
        if bad:
            R.note(f"scenario 11: {len(bad)} answer(s) not as expected, e.g.: " + " / ".join(bad[:3]))
    finally:
        for name in ("orchard-child", "orchard-parent"):
            PROCS.stop(name)
            with open(env.box_log(name), errors="replace") as f:
                lines = [l.rstrip() for l in f if l.strip() and not l.startswith("----")
                         and "orchardd ready" not in l and "catalog.base_url is not set" not in l]
            if lines:
                R.note(f"scenario 11: {name} logged {len(lines)} line(s) at warn or above, e.g.: "
                       + " / ".join(lines[:3]))
