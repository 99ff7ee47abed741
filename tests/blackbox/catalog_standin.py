"""A stand-in for orchardd's catalog API, for orchardctl's black-box tests.

Role: answers the routes orchardctl uses (INTERFACE.md "Catalog API") the
way the box does, on 127.0.0.1 and a port of its own, and records what each
request carried so a test can check what the box would have seen:

  PUT    /api/v1/packages/{name}/{version}/{filename}[?title=&bundle_id=&
         bundle_version=&package_id=&min_os=&max_os=&archs=a,b]
         Refusals are decided from the head, before `100 Continue` is sent
         (401 bad token, 411 no Content-Length, 409 same name/version with
         another X-Checksum-Sha256); then the body is read (throttled to
         `rate` bytes/s when set), its SHA-256 checked against the header
         (400 on a mismatch, nothing kept), and 201 (new) or 200 (same
         bytes) answered with the package JSON.
  GET    /api/v1/packages, /api/v1/packages/{name}   (versions newest first)
  DELETE /api/v1/packages/{name}/{version}
  GET    /api/v1/audit?after=&limit=                 (paged with "next")
  GET    /api/v1/status (no token), /metrics (no token)

Every /api/v1 route but status needs `Authorization: Bearer <token>`; a
missing or wrong one is 401 with `WWW-Authenticate: Bearer`. Errors are
`{"error", "detail"}`.

Records: `requests` (one dict per request: method, raw target, headers,
whether the body was read, its length and sha256, the status answered,
the answer's body), in arrival order, guarded by a lock. Threads: one per
connection (ThreadingHTTPServer); `stop()` shuts it down.
"""

import hashlib
import http.server
import json
import threading
import time
import urllib.parse

QUERY_FIELDS = ("title", "bundle_id", "bundle_version", "package_id", "min_os", "max_os")


class CatalogStandIn:
    def __init__(self, token="secret-token", rate=None):
        self.token = token
        self.rate = rate            # body read rate in bytes/s, None: full speed
        self.requests = []
        self.packages = {}          # name -> {version: record}, insertion order = publish order
        self.audit = []
        self.clock = 1_700_000_000  # "published" times, one second apart
        self.lock = threading.Lock()
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

    def last(self, method=None):
        with self.lock:
            hits = [r for r in self.requests if method is None or r["method"] == method]
        return hits[-1] if hits else None

    def clear(self):
        with self.lock:
            self.requests.clear()

    # -- catalog state (called under no lock from one handler at a time per route)
    def add_audit(self, action, obj, client):
        with self.lock:
            self.audit.append({"seq": len(self.audit) + 1, "time": self.clock, "action": action,
                               "object": obj, "client": client, "token": "admin"})


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin = None  # set by the subclass CatalogStandIn makes

    def log_message(self, fmt, *args):
        pass

    # -- plumbing
    def parse_request(self):
        self._rec = None  # one handler serves every request of a connection
        return super().parse_request()

    def _entry(self):
        if getattr(self, "_rec", None) is None:
            self._rec = {"method": self.command, "target": self.path,
                         "headers": {k.lower(): v for k, v in self.headers.items()},
                         "body_read": False, "body_len": 0, "body_sha256": None,
                         "status": None, "answer": None}
        return self._rec

    def _send(self, status, obj=None, text=None, extra=None, close=False):
        body = (json.dumps(obj) if obj is not None else (text or "")).encode()
        # Recorded before a byte of the answer leaves, so a client that has
        # its answer always finds its request in `requests`.
        rec = self._entry()
        rec["status"] = status
        rec["answer"] = body.decode()
        self.standin.record(rec)
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if obj is not None else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, error, detail, close=False):
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        self._send(status, {"error": error, "detail": detail}, extra=extra, close=close)

    def _authorized(self):
        return self.headers.get("Authorization") == f"Bearer {self.standin.token}"

    def _split(self):
        parsed = urllib.parse.urlsplit(self.path)
        raw = parsed.path.split("/")[1:]
        return [urllib.parse.unquote(s) for s in raw], urllib.parse.parse_qs(parsed.query)

    # -- the head-only decision for a PUT, shared by Expect and no-Expect paths
    def _refuse_put(self):
        segs, _ = self._split()
        if segs[:3] != ["api", "v1", "packages"] or len(segs) != 6:
            return (404, "not_found", "no such route")
        if not self._authorized():
            return (401, "unauthorized", "a bearer token is required")
        if self.headers.get("Content-Length") is None:
            return (411, "length_required", "Content-Length is required")
        name, version = segs[3], segs[4]
        have = self.standin.packages.get(name, {}).get(version)
        want = self.headers.get("X-Checksum-Sha256")
        if have and want and have["sha256"] != want.lower():
            return (409, "exists", f"{name} {version} exists with other bytes")
        return None

    def handle_expect_100(self):
        self._entry()["expect"] = self.headers.get("Expect")
        if self.command == "PUT":
            refusal = self._refuse_put()
            if refusal:
                self._error(*refusal, close=True)  # the body never comes: drop the connection
                return False
        return super().handle_expect_100()

    # -- routes
    def do_PUT(self):
        refusal = self._refuse_put()
        if refusal:
            self._error(*refusal, close=True)
            return
        segs, query = self._split()
        name, version, filename = segs[3], segs[4], segs[5]
        length = int(self.headers["Content-Length"])
        sha = hashlib.sha256()
        left, started = length, time.monotonic()
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            sha.update(chunk)
            left -= len(chunk)
            if self.standin.rate:
                ahead = (length - left) / self.standin.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        rec = self._entry()
        rec.update(body_read=True, body_len=length - left, body_sha256=sha.hexdigest())
        if left:
            self._error(400, "short_body", "the body ended early", close=True)
            return
        digest = sha.hexdigest()
        want = self.headers.get("X-Checksum-Sha256")
        if want and want.lower() != digest:
            self._error(400, "checksum_mismatch", f"body has sha256 {digest}, header says {want}")
            return
        versions = self.standin.packages.setdefault(name, {})
        if version in versions and versions[version]["sha256"] != digest:
            self._error(409, "exists", f"{name} {version} exists with other bytes")
            return
        if version in versions:
            self._send(200, versions[version])
            return
        self.standin.clock += 1
        versions[version] = self._package(name, version, filename, length, digest, query)
        self.standin.add_audit("publish", f"{name}/{version}", self.client_address[0])
        self._send(201, versions[version])

    def _package(self, name, version, filename, size, digest, query):
        meta = {"title": "", "bundle_id": "", "bundle_version": "", "package_id": "",
                "package_version": "", "min_os": "", "max_os": "", "archs": [], "bundles": [],
                "pkg_refs": [], "distribution": False, "source": {}}
        for f in QUERY_FIELDS:
            if f in query:
                meta[f] = query[f][0]
                meta["source"][f] = "request"
        if "archs" in query:
            meta["archs"] = query["archs"][0].split(",")
            meta["source"]["archs"] = "request"
        base = f"http://127.0.0.1:{self.standin.port}"
        q = urllib.parse.quote
        return {"name": name, "version": version, "filename": filename, "size": size, "sha256": digest,
                "url": f"{base}/pkgs/{q(name)}/{q(version)}/{q(filename)}",
                "manifest_url": f"{base}/manifests/{q(name)}/{q(version)}.plist",
                "metadata": meta,
                "signature": {"present": False, "verified": False, "trusted": False, "chain": [],
                              "problem": "no signature"},
                "warnings": ["unsigned: the package carries no signature"],
                "published": self.standin.clock, "downloads": 0}

    def do_GET(self):
        segs, query = self._split()
        if segs == ["api", "v1", "status"]:
            self._send(200, {"CacheStatus": "OK", "CacheLimit": 1024, "CacheUsed": 0})
            return
        if segs == ["metrics"]:
            self._send(200, text="orchard_up 1\n")
            return
        if segs[:2] == ["api", "v1"] and not self._authorized():
            self._error(401, "unauthorized", "a bearer token is required")
            return
        if segs == ["api", "v1", "packages"]:
            out = [{"name": n, "latest": list(v)[-1], "versions": len(v),
                    "size": sum(p["size"] for p in v.values())}
                   for n, v in sorted(self.standin.packages.items()) if v]
            self._send(200, {"packages": out})
        elif segs[:3] == ["api", "v1", "packages"] and len(segs) == 4:
            versions = self.standin.packages.get(segs[3])
            if not versions:
                self._error(404, "not_found", f"no package {segs[3]}")
                return
            self._send(200, {"name": segs[3], "versions": list(reversed(versions.values()))})
        elif segs == ["api", "v1", "audit"]:
            after = int(query.get("after", ["0"])[0])
            limit = int(query.get("limit", ["100"])[0])
            with self.standin.lock:
                rest = [e for e in self.standin.audit if e["seq"] > after]
            page = rest[:limit]
            nxt = page[-1]["seq"] if len(rest) > limit else None
            self._send(200, {"entries": page, "next": nxt})
        else:
            self._error(404, "not_found", "no such route")

    def do_DELETE(self):
        segs, _ = self._split()
        if not self._authorized():
            self._error(401, "unauthorized", "a bearer token is required")
            return
        if segs[:3] != ["api", "v1", "packages"] or len(segs) != 5:
            self._error(404, "not_found", "no such route")
            return
        versions = self.standin.packages.get(segs[3], {})
        if segs[4] not in versions:
            self._error(404, "not_found", f"no version {segs[4]} of {segs[3]}")
            return
        del versions[segs[4]]
        self.standin.add_audit("delete", f"{segs[3]}/{segs[4]}", self.client_address[0])
        self._send(200, {"deleted": {"name": segs[3], "version": segs[4]}})
