"""The systems under test for the end-to-end benchmark, and how they start.

Part of bench/e2e (run by bench.py): nginx configs and start-up for the
origin, nginx proxy_cache (configured as lancache runs it), nginx direct,
nginx dav (scenario 7's upload reference), the WAN relay (relay.py) and
orchardd, all on 127.0.0.1 through `Env`, which
holds their ports, work dirs and logs and restarts a cache empty for cold runs.
"""

import os
import re
import shutil
import subprocess
import sys
import time

from common import ADMIN_TOKEN, BUILD, DATA, HOST, PROCS, ROOT, WAN_HOST, WAN_RATE, free_port, wait_port


# ---------------------------------------------------------------- systems

NGINX_COMMON = """
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 20000; multi_accept on; }}
http {{
  default_type application/octet-stream;
  client_body_temp_path {prefix}/client_body;
  proxy_temp_path {prefix}/proxy_temp;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  {http}
}}
"""


def write_nginx(prefix, http, workers="auto"):
    os.makedirs(prefix, exist_ok=True)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_COMMON.format(prefix=prefix, http=http, workers=workers))
    return conf


def start_nginx(name, prefix, conf, port):
    PROCS.start(name, ["nginx", "-p", prefix, "-e", os.path.join(prefix, "error.log"), "-c", conf],
                os.path.join(prefix, "stdout.log"))
    wait_port(port)
    return PROCS.procs[name]


class Env:
    def __init__(self, work):
        self.work = work
        self.ports = {k: free_port() for k in ("origin", "relay", "orchard", "cache", "direct", "direct-copy",
                                                "dav", "orchard-https", "direct-https", "orchard-parent",
                                                "orchard-child")}
        self.tls_dir = os.path.join(work, "tls")
        self.files = os.path.join(DATA, "files")
        self.origin_log = os.path.join(work, "origin", "access.log")
        self.orchard_state = None
        self.orchard_stderr = os.path.join(work, "orchardd.log")
        self.dav_root = os.path.join(work, "nginx-dav", "root")  # PUT /dav/X lands in dav_root/dav/X

    # --- origin, relay, direct: started once
    def start_origin(self):
        prefix = os.path.join(self.work, "origin")
        http = f"""
  log_format bench '$msec "$request" $status $body_bytes_sent "$http_range" $request_time';
  access_log {self.origin_log} bench;
  sendfile on;
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{self.ports['origin']} reuseport backlog=4096;
    root {self.files};
    location / {{ }}
  }}"""
        start_nginx("origin", prefix, write_nginx(prefix, http), self.ports["origin"])

    def start_relay(self):
        p = PROCS.start("relay", [sys.executable, os.path.join(ROOT, "bench", "e2e", "relay.py"),
                                  "--listen-port", str(self.ports["relay"]), "--target-port", str(self.ports["origin"]),
                                  "--rate", str(WAN_RATE)], os.path.join(self.work, "relay.log"))
        wait_port(self.ports["relay"])
        return p

    def start_direct(self, copy=False):
        """nginx serving the files itself: with sendfile, or (copy=True)
        with sendfile off, reading into its output buffers and writing them
        (the copy reference; nginx's default output_buffers)."""
        name = "direct-copy" if copy else "direct"
        prefix = os.path.join(self.work, name)
        http = f"""
  access_log off;
  sendfile {"off" if copy else "on"};
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{self.ports[name]} reuseport backlog=4096;
    root {self.files};
    location / {{ }}
  }}"""
        start_nginx(f"nginx-{name}", prefix, write_nginx(prefix, http), self.ports[name])

    def start_direct_copy(self):
        self.start_direct(copy=True)

    def make_certificate(self):
        """One EC P-256 certificate for 127.0.0.1 that both Orchard and nginx
        serve in scenario 9, so both pay the same handshake and record costs."""
        if os.path.exists(os.path.join(self.tls_dir, "cert.pem")):
            return
        os.makedirs(self.tls_dir, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", "key.pem", "-out", "cert.pem", "-days", "7", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       cwd=self.tls_dir, check=True, capture_output=True)

    def start_direct_https(self):
        """nginx serving the files itself over HTTPS (scenario 9's reference):
        TLS 1.2/1.3 with its defaults, in user space like Orchard here (no
        kTLS on this kernel), keep-alive as for the others."""
        self.make_certificate()
        prefix = os.path.join(self.work, "direct-https")
        http = f"""
  access_log off;
  sendfile on;
  tcp_nopush on;
  server {{
    listen 127.0.0.1:{self.ports['direct-https']} ssl reuseport backlog=4096;
    ssl_certificate {self.tls_dir}/cert.pem;
    ssl_certificate_key {self.tls_dir}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    root {self.files};
    location / {{ }}
  }}"""
        start_nginx("nginx-direct-https", prefix, write_nginx(prefix, http), self.ports["direct-https"])

    def start_dav(self):
        """nginx taking PUTs under /dav/ into dav_root (scenario 7's publish
        reference): the body goes to a temp file beside it and is renamed
        into place; no checksum, no fsync."""
        prefix = os.path.join(self.work, "nginx-dav")
        os.makedirs(os.path.join(self.dav_root, "dav"), exist_ok=True)
        os.makedirs(os.path.join(prefix, "dav_temp"), exist_ok=True)
        http = f"""
  access_log off;
  server {{
    listen 127.0.0.1:{self.ports['dav']} reuseport backlog=4096;
    root {self.dav_root};
    location /dav/ {{
      dav_methods PUT;
      client_body_buffer_size 1m;
      client_max_body_size 0;
      client_body_temp_path {prefix}/dav_temp;
      create_full_put_path on;
    }}
  }}"""
        start_nginx("nginx-dav", prefix, write_nginx(prefix, http), self.ports["dav"])

    # --- nginx proxy_cache, as lancache runs it
    def start_cache(self, fresh):
        prefix = os.path.join(self.work, "nginx-cache")
        cache = os.path.join(prefix, "cache")
        if fresh and os.path.exists(cache):
            shutil.rmtree(cache)
        os.makedirs(cache, exist_ok=True)
        loc = """
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_cache generic;
      proxy_cache_key $host$uri;
      proxy_cache_valid 200 206 1y;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 1h;
      proxy_cache_lock_age 1h;
      proxy_buffering on;
      proxy_ignore_headers Expires Cache-Control;
      proxy_max_temp_file_size 40960m;
      proxy_read_timeout 300s;
      add_header X-Cache-Status $upstream_cache_status;"""
        http = f"""
  access_log off;
  sendfile on;
  tcp_nopush on;
  proxy_cache_path {cache} levels=2:2 keys_zone=generic:500m inactive=200d max_size=100g
                   loader_files=1000 loader_sleep=50ms loader_threshold=300ms use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{self.ports['origin']}; keepalive 32; }}
  upstream wan {{ server 127.0.0.1:{self.ports['relay']}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{self.ports['cache']} reuseport backlog=4096 default_server;
    server_name {HOST};
    location / {{ proxy_pass http://origin; {loc}
    }}
  }}
  server {{
    listen 127.0.0.1:{self.ports['cache']};
    server_name {WAN_HOST};
    location / {{ proxy_pass http://wan; {loc}
    }}
  }}"""
        return start_nginx("nginx-cache", prefix, write_nginx(prefix, http), self.ports["cache"])

    def stop_cache(self):
        PROCS.stop("nginx-cache")

    # --- orchardd
    def start_orchard(self, fresh, state=None):
        state = state or os.path.join(self.work, "orchard-state")
        if fresh and os.path.exists(state):
            shutil.rmtree(state)
        os.makedirs(state, exist_ok=True)
        conf = os.path.join(self.work, "orchard.toml")
        self.make_certificate()
        with open(conf, "w") as f:
            f.write(f"""[server]
listen = ["127.0.0.1:{self.ports['orchard']}"]
workers = 0
drain_timeout = "1s"
idle_timeout = "300s"
header_timeout = "300s"
max_connections = 20000
max_connections_per_client = 0
log_level = "warn"
access_log = false

[tls]
listen = ["127.0.0.1:{self.ports['orchard-https']}"]
certificate = "{self.tls_dir}/cert.pem"
private_key = "{self.tls_dir}/key.pem"

[storage]
dir = "{state}"
cache_limit = "200GiB"

[upstream]
resolve = {{ "{HOST}" = "127.0.0.1:{self.ports['origin']}", "{WAN_HOST}" = "127.0.0.1:{self.ports['relay']}" }}
read_timeout = "300s"

[admin]
token = "{ADMIN_TOKEN}"

[catalog]
limit = "64GiB"

[apple]
os_feed_url = ""
""")
        t0 = time.monotonic()
        with open(self.orchard_stderr, "ab") as lf:
            lf.write(f"---- start {time.strftime('%H:%M:%S')} state={state}\n".encode())
        p = PROCS.start("orchard", [os.path.join(BUILD, "orchardd"), "--config", conf], self.orchard_stderr,
                        nofile=65536)
        # "orchardd ready" on stderr (which goes to the log file)
        deadline = t0 + 120
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"orchardd exited with {p.returncode}; see {self.orchard_stderr}")
            with open(self.orchard_stderr, "rb") as lf:
                txt = lf.read()
            if txt.rfind(b"orchardd ready") > txt.rfind(b"---- start"):
                return p, time.monotonic() - t0
            time.sleep(0.005)
        raise RuntimeError("orchardd not ready after 120 s")

    def stop_orchard(self):
        PROCS.stop("orchard")

    # --- two more orchardd boxes, a parent and its child (scenario 11)
    def box_log(self, name):
        return os.path.join(self.work, f"{name}.log")

    def start_box(self, name, parents=(), fresh=True):
        """orchardd as `name` ("orchard-parent" or "orchard-child") on its own
        port, state dir and log, with `parents` ("127.0.0.1:PORT") as
        upstream.parents; the same origin mapping and settings as the main
        box but no TLS listener and no catalog use. Returns the process."""
        state = os.path.join(self.work, f"{name}-state")
        if fresh and os.path.exists(state):
            shutil.rmtree(state)
        os.makedirs(state, exist_ok=True)
        conf = os.path.join(self.work, f"{name}.toml")
        plist = ", ".join(f'"{p}"' for p in parents)
        with open(conf, "w") as f:
            f.write(f"""[server]
listen = ["127.0.0.1:{self.ports[name]}"]
workers = 0
drain_timeout = "1s"
idle_timeout = "300s"
header_timeout = "300s"
max_connections_per_client = 0
log_level = "warn"
access_log = false

[storage]
dir = "{state}"
cache_limit = "20GiB"

[upstream]
resolve = {{ "{HOST}" = "127.0.0.1:{self.ports['origin']}", "{WAN_HOST}" = "127.0.0.1:{self.ports['relay']}" }}
read_timeout = "300s"
parents = [{plist}]

[admin]
token = "{ADMIN_TOKEN}"

[apple]
os_feed_url = ""
""")
        log_path = self.box_log(name)
        with open(log_path, "ab") as lf:
            lf.write(f"---- start {time.strftime('%H:%M:%S')} state={state}\n".encode())
        p = PROCS.start(name, [os.path.join(BUILD, "orchardd"), "--config", conf], log_path, nofile=65536)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}; see {log_path}")
            with open(log_path, "rb") as lf:
                txt = lf.read()
            if txt.rfind(b"orchardd ready") > txt.rfind(b"---- start"):
                return p
            time.sleep(0.005)
        raise RuntimeError(f"{name} not ready after 60 s")

    def port(self, system):
        return {"orchard": self.ports["orchard"], "nginx-cache": self.ports["cache"],
                "nginx-direct": self.ports["direct"], "nginx-direct-copy": self.ports["direct-copy"],
                "nginx-dav": self.ports["dav"], "origin": self.ports["origin"],
                "orchard-https": self.ports["orchard-https"], "nginx-direct-https": self.ports["direct-https"],
                "orchard-parent": self.ports["orchard-parent"], "orchard-child": self.ports["orchard-child"]}[system]

    def pid(self, system):
        p = PROCS.procs.get(system)
        return p.pid if p else None

    def origin_log_offset(self):
        try:
            return os.path.getsize(self.origin_log)
        except OSError:
            return 0

    def origin_requests(self, offset, path):
        """(requests, body bytes) the origin logged for `path` since `offset`."""
        reqs, sent = 0, 0
        with open(self.origin_log, "rb") as f:
            f.seek(offset)
            for line in f.read().decode(errors="replace").splitlines():
                m = re.match(r'^\S+ "(\S+) (\S+) [^"]*" (\d+) (\d+)', line)
                if m and m.group(2).split("?")[0] == path:
                    reqs += 1
                    sent += int(m.group(4))
        return reqs, sent
