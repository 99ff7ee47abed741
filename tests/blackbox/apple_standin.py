"""A stand-in for orchardd's Apple-content API, for orchardctl's black-box
tests (test_orchardctl_apple.py), so they do not depend on the server side.

Role: answers the routes `orchardctl apple|prewarm|import` use, with canned
JSON in the documented shapes, on 127.0.0.1 and a port of its own, and
records every request (method, raw target, headers, body, arrival time):

  GET    /api/v1/apple/products[?kind=&q=&limit=&refresh=1]   scope read
         (503 {"error","detail"} while `catalog_loaded` is False)
  GET    /api/v1/apple/products/{id}                          scope read (404 unknown)
  POST   /api/v1/apple/products/{id}/mirror                   scope publish
         202 with a new job (200 and already_queued for QUEUED_ID)
  GET    /api/v1/apple/mirrors, /api/v1/apple/mirrors/{job}   scope read
  POST   /api/v1/apple/products/{id}/publish                  scope publish (201; 409 unless mirrored)
  GET    /api/v1/apple/os-versions?platform=                  scope read
  PUT    /api/v1/prewarm/{name}, DELETE /api/v1/prewarm/{name} scope publish
  GET    /api/v1/prewarm, /api/v1/prewarm/{name}              scope read
  POST   /api/v1/packages/{name}/{version}/from-url           scope publish (201)

Mirror jobs follow a script per product (SCRIPTS): the POST answers step 0
and each GET of the job moves it one step on (staying on the last), so a
test sees orchardctl follow a job from queued to done or failed.

Tokens: READ_TOKEN has scope read, PUBLISH_TOKEN read and publish; none or
another is 401, a read token on a publish route 403. Threads: one per
connection (ThreadingHTTPServer); `requests` is guarded by a lock.
"""

import http.server
import json
import threading
import time
import urllib.parse

READ_TOKEN = "read-token"
PUBLISH_TOKEN = "publish-token"
SCOPES = {READ_TOKEN: {"read"}, PUBLISH_TOKEN: {"read", "publish"}}

OK_ID, FAIL_ID, WAIT_ID, QUEUED_ID = "062-78825", "052-15137", "071-00001", "071-00002"
GiB = 1 << 30
MiB = 1 << 20
PKG = "https://swcdn.apple.com/content/downloads/62/13/062-78825/abc/InstallAssistant.pkg"
MANIFEST = "https://swcdn.apple.com/content/downloads/62/13/062-78825/abc/BuildManifest.plist"

# (state, percent) per step of a product's mirror job.
SCRIPTS = {
    OK_ID: [("queued", 0), ("running", 0), ("running", 25), ("running", 60), ("done", 100)],
    FAIL_ID: [("running", 10), ("running", 40), ("failed", 40)],
    WAIT_ID: [("waiting", 0), ("waiting", 0), ("waiting", 0), ("running", 50), ("done", 100)],
    QUEUED_ID: [("queued", 0)],
}


def product(pid, kind, title, version, build, date, size, held, mirror=None):
    p = {"id": pid, "kind": kind, "title": title, "version": version, "build": build,
         "post_date": date, "size": size, "held_percent": held,
         "packages": [
             {"url": PKG, "size": size - 41824, "integrity_url": PKG + ".integrityDataV1",
              "held": {"state": "complete" if held == 100 else ("partial" if held else "absent"),
                       "bytes": (size - 41824) * held // 100, "percent": held}},
             {"url": MANIFEST, "size": 41824,
              "held": {"state": "complete", "bytes": 41824, "percent": 100}}]}
    if mirror:
        p["mirror"] = mirror
    return p


PRODUCTS = [
    product(OK_ID, "installer", "macOS Sequoia", "15.0.1", "24A348", "2024-10-03T17:00:00Z", 14 * GiB, 100, "done"),
    product(FAIL_ID, "update", "Safari", "18.0", "20619.1.26", "2024-09-16T17:00:00Z", 180 * MiB, 40, "failed"),
    product(WAIT_ID, "installer", "macOS Sonoma", "14.7", "23H124", "2024-09-16T17:00:00Z", 13 * GiB, 0),
    product(QUEUED_ID, "installer", "macOS Ventura", "13.7", "22H123", "2024-09-16T17:00:00Z", 12 * GiB, 0, "queued"),
]

OS_VERSIONS = {
    "source": "https://gdmf.apple.com/v2/pmv", "fetched_at": "2024-10-04T06:00:00Z", "stale": True,
    "last_attempt": {"time": "2024-10-05T06:00:00Z", "ok": False, "error": "connection refused"},
    "releases": [
        {"set": "PublicAssetSets", "platform": "macOS", "version": "15.0.1", "build": "24A348",
         "posting_date": "2024-10-03", "expiration_date": "2025-01-01",
         "supported_devices": ["J274AP", "J293AP", "J313AP"]},
        {"set": "AssetSets", "platform": "macOS", "version": "14.7", "build": "23H124",
         "posting_date": "2024-09-16", "expiration_date": None, "supported_devices": ["J274AP"]}],
}


def published(name, version, filename, size):
    base = "http://127.0.0.1"
    q = urllib.parse.quote
    return {"name": name, "version": version, "filename": filename, "size": size, "sha256": "ab" * 32,
            "url": f"{base}/pkgs/{q(name)}/{q(version)}/{q(filename)}",
            "manifest_url": f"{base}/manifests/{q(name)}/{q(version)}.plist",
            "metadata": {"title": name, "package_id": "com.apple.pkg.InstallAssistant.macOSSequoia",
                         "source": {"title": "catalog"}},
            "warnings": []}


class AppleStandIn:
    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.catalog_loaded = True
        self.catalog_detail = "GET https://swscan.apple.com/...sucatalog: 502 from the origin"
        self.jobs = {}       # id -> {"product", "step"}
        self.next_job = 7
        self.prewarm = {}    # name -> list
        outer = self

        class Handler(_Handler):
            standin = outer
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def record(self, entry):
        with self.lock:
            self.requests.append(entry)

    def seen(self, method=None, prefix=""):
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r["method"] == method) and r["target"].startswith(prefix)]

    def clear(self):
        with self.lock:
            self.requests.clear()

    def job(self, jid):
        j = self.jobs[jid]
        script = SCRIPTS[j["product"]]
        state, percent = script[min(j["step"], len(script) - 1)]
        total = 1 * GiB
        done = total * percent // 100
        items = [{"url": PKG, "size": total - 41824, "state": "done" if state == "done" else state,
                  "held": {"state": "complete" if state == "done" else "partial", "bytes": done, "percent": percent}},
                 {"url": MANIFEST, "size": 41824, "state": "done", "sha256": "cd" * 32,
                  "held": {"state": "complete", "bytes": 41824, "percent": 100}}]
        out = {"id": jid, "kind": "mirror", "state": state, "created_at": "2024-10-04T22:00:00Z",
               "total_bytes": total, "done_bytes": done, "percent": percent,
               "rate": 10 * MiB if state == "running" else 0, "held_percent": percent, "items": items,
               "already_queued": j.get("already_queued", False)}
        if state == "running":
            out["eta_seconds"] = (total - done) // (10 * MiB)
            out["current"] = PKG
        if state == "waiting":
            out["reason"] = "outside apple.mirror_window 22:00-06:00 (opens in 3h10m)"
        if state == "failed":
            out["reason"] = "1 of 2 files failed"
            out["finished_at"] = "2024-10-04T22:10:00Z"
            items[0].update(state="failed", reason="chunklist mismatch at chunk 12", verify_failures=3)
        if state == "done":
            out["finished_at"] = "2024-10-04T22:30:00Z"
        if j.get("note"):
            out["note"] = j["note"]
        return out


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin = None

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self._rec["status"] = status
        self.standin.record(self._rec)  # before the answer leaves: a client that has it finds the request
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, error, detail):
        self._send(status, {"error": error, "detail": detail})

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._rec = {"method": self.command, "target": self.path, "time": time.monotonic(),
                     "headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": body.decode(errors="replace")}
        parsed = urllib.parse.urlsplit(self.path)
        segs = [urllib.parse.unquote(s) for s in parsed.path.split("/")[1:]]
        query = urllib.parse.parse_qs(parsed.query)
        if segs[:2] != ["api", "v1"]:
            return self._error(404, "not_found", "no such route")
        segs = segs[2:]
        write = self.command != "GET"
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if token not in SCOPES:
            return self._error(401, "unauthorized", "a bearer token is required")
        need = "publish" if write else "read"
        if need not in SCOPES[token]:
            return self._error(403, "forbidden", f"the token's scope is read; this route needs {need}")
        return self._route(segs, query, body)

    def _route(self, segs, query, body):
        s = self.standin
        m = self.command
        if segs[:2] == ["apple", "products"]:
            if not s.catalog_loaded:
                return self._error(503, "no_catalog", s.catalog_detail)
            if len(segs) == 2 and m == "GET":
                return self._send(200, {"catalog_url": "https://swscan.apple.com/content/catalogs/others/"
                                                       "index-15.merged-1.sucatalog",
                                        "loaded_at": "2024-10-04T08:00:00Z", "cache_status": "hit",
                                        "matched": len(PRODUCTS), "products": PRODUCTS})
            p = next((p for p in PRODUCTS if len(segs) > 2 and p["id"] == segs[2]), None)
            if p is None:
                return self._error(404, "not_found", f"no product {segs[2] if len(segs) > 2 else ''}")
            if len(segs) == 3 and m == "GET":
                return self._send(200, p)
            if len(segs) == 4 and segs[3] == "mirror" and m == "POST":
                with s.lock:
                    if p["id"] == QUEUED_ID:
                        jid = "5"
                        s.jobs[jid] = {"product": QUEUED_ID, "step": 0, "already_queued": True,
                                       "note": "one mirror runs at a time; this one starts after job 4"}
                        status = 200
                    else:
                        jid = str(s.next_job)
                        s.next_job += 1
                        s.jobs[jid] = {"product": p["id"], "step": 0}
                        status = 202
                return self._send(status, s.job(jid))
            if len(segs) == 4 and segs[3] == "publish" and m == "POST":
                if p.get("mirror") != "done":
                    return self._error(409, "not_mirrored", f"{p['id']} is not mirrored (held {p['held_percent']}%)")
                return self._send(201, published(p["title"], p["version"], "InstallAssistant.pkg", 14 * GiB))
        elif segs[:2] == ["apple", "mirrors"] and m == "GET":
            if len(segs) == 2:
                with s.lock:
                    jobs = [s.job(j) for j in s.jobs]
                return self._send(200, {"window_open": False, "mirrors": jobs})
            with s.lock:
                if len(segs) == 3 and segs[2] in s.jobs:
                    s.jobs[segs[2]]["step"] += 1
                    job = s.job(segs[2])
                else:
                    job = None
            if job is None:
                return self._error(404, "not_found", "no such mirror job")
            return self._send(200, job)
        elif segs == ["apple", "os-versions"] and m == "GET":
            platform = query.get("platform", ["macOS"])[0]
            out = dict(OS_VERSIONS, releases=[r for r in OS_VERSIONS["releases"] if r["platform"] == platform])
            return self._send(200, out)
        elif segs[:1] == ["prewarm"]:
            if len(segs) == 1 and m == "GET":
                with s.lock:
                    lists = list(s.prewarm.values())
                return self._send(200, {"prewarm": lists})
            name = segs[1] if len(segs) == 2 else None
            if name is not None and m == "PUT":
                try:
                    doc = json.loads(body)
                except ValueError:
                    return self._error(400, "bad_json", "the body is not JSON")
                lst = {"name": name, "urls": doc.get("urls", []), "products": doc.get("products", []),
                       "window": doc.get("window", ""), "interval": doc.get("interval", 21600),
                       "updated_at": "2024-10-04T08:00:00Z", "state": "idle", "coverage_percent": 0}
                with s.lock:
                    s.prewarm[name] = lst
                return self._send(200, lst)
            with s.lock:
                lst = s.prewarm.get(name) if name is not None else None
            if lst is None:
                return self._error(404, "not_found", f"no prewarm list {name}")
            if m == "GET":
                return self._send(200, lst)
            if m == "DELETE":
                with s.lock:
                    del s.prewarm[name]
                return self._send(200, {"deleted": name})
        elif segs[:1] == ["packages"] and len(segs) == 4 and segs[3] == "from-url" and m == "POST":
            try:
                doc = json.loads(body)
            except ValueError:
                return self._error(400, "bad_json", "the body is not JSON")
            url = doc.get("url", "")
            filename = doc.get("filename") or url.rstrip("/").rsplit("/", 1)[-1]
            return self._send(201, published(segs[1], segs[2], filename, 2048))
        return self._error(404, "not_found", "no such route")

    do_GET = do_POST = do_PUT = do_DELETE = _handle
