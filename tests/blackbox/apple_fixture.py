"""A fake Apple software-update catalog, for tests that serve it from a local
origin (black-box tests) and for the catalog's C++ unit tests.

Role: build_fixture() returns every file an origin must serve to stand in for
Apple (swscan.apple.com for the catalog, swcdn.apple.com for the rest):
packages, chunklists, .dist, .smd and .pkm files, the catalog itself at
/content/catalogs/test.sucatalog (XML plist), a gzip copy at
/content/catalogs/test.sucatalog.gz and a binary-plist copy at
/content/catalogs/test.binary.sucatalog. Everything is deterministic for a
given seed; nothing touches the network or the disk (but `--write`).

Products (what `.products` describes, in this order):
  001-INSTALL  an installer (ExtendedMetaInfo.InstallAssistantPackageIdentifiers):
               InstallAssistant.pkg (install_size bytes, pseudo-random; the
               default, DEFAULT_INSTALL_SIZE, is 6 MiB and 54321 bytes so that
               the last chunk is short) with a correct chunklist (1 MiB chunks), and a small BuildManifest.plist without one; a .dist
               with <auxinfo> BUILD/VERSION and a SU_TITLE strings table.
  002-UPDATE   an update: one package with a .pkm MetadataURL, a .smd
               (CFBundleShortVersionString, localization.English.title) and a
               .dist whose title and version come from the strings table
               (SU_TITLE, SU_VERS).
  003-BROKEN   an installer whose only package's chunklist has a wrong
               SHA-256 for chunk 1 (`bad_chunk` says which).

Each product dict: id, kind ("installer" | "update"), title, version, build
("" when none), post_date (Unix seconds), dist_url, smd_url (or None) and
packages: [{url, path, size, sha256, sha1, chunklist_url (or None),
chunklist_path (or None), bad_chunk (index or None)}].

Chunklist layout (little-endian, see catalog/apple/chunklist.h): a 36-byte
header (magic "CNKL" 0x4C4B4E43, header size 36, version 1, method 1 =
SHA-256, signature method 2, pad, chunk count, chunk offset 36, signature
offset), then per chunk size u32 + SHA-256, then 256 signature bytes (not a
real signature: nothing checks it).

Usage: `python3 apple_fixture.py` prints a summary and checks the fixture
against itself; `python3 apple_fixture.py --write DIR [--install-size N]
[--scheme http]` also writes every file under DIR (DIR/content/...).
Standard library only (Python 3.11).
"""

import datetime
import gzip
import hashlib
import plistlib
import struct
import sys

MiB = 1 << 20
CHUNK = 1 << 20
DEFAULT_INSTALL_SIZE = 6 * MiB + 54321
CHUNKLIST_MAGIC = 0x4C4B4E43
CATALOG_PATH = "/content/catalogs/test.sucatalog"
CATALOG_GZ_PATH = CATALOG_PATH + ".gz"
CATALOG_BINARY_PATH = "/content/catalogs/test.binary.sucatalog"


def pseudo_random(name, n, seed):
    """n deterministic bytes for (name, seed)."""
    return hashlib.shake_256(f"{seed}:{name}".encode()).digest(n)


def chunklist(data, chunk=CHUNK, bad_chunk=None, seed=0):
    """Apple's chunklist for `data`; bad_chunk: index whose SHA-256 is wrong."""
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    entries = b""
    for i, c in enumerate(chunks):
        digest = hashlib.sha256(c).digest()
        if i == bad_chunk:
            digest = bytes([digest[0] ^ 0xFF]) + digest[1:]
        entries += struct.pack("<I", len(c)) + digest
    header_size = 36
    signature_offset = header_size + len(entries)
    header = struct.pack("<IIBBBBQQQ", CHUNKLIST_MAGIC, header_size, 1, 1, 2, 0,
                         len(chunks), header_size, signature_offset)
    return header + entries + pseudo_random("signature", 256, seed)


def parse_chunklist(blob):
    """[(size, sha256 bytes)] of a chunklist (for the self-test)."""
    magic, hsize, ver, method, _sig, _pad, count, offset, _so = struct.unpack_from("<IIBBBBQQQ", blob)
    assert (magic, hsize, ver, method) == (CHUNKLIST_MAGIC, 36, 1, 1)
    return [struct.unpack_from("<I32s", blob, offset + 36 * i) for i in range(count)]


def _date(y, mo, d, h=17, mi=0):
    # Naive UTC: plistlib writes a naive datetime as is, with a "Z".
    return datetime.datetime(y, mo, d, h, mi, 0)


def _unix(dt):
    return int((dt - datetime.datetime(1970, 1, 1)).total_seconds())


def dist_installer(title, version, build):
    return f"""<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>SU_TITLE</title>
    <options hostArchitectures="x86_64,arm64" customize="never" allow-external-scripts="no"/>
    <auxinfo>
        <dict>
            <key>BUILD</key>
            <string>{build}</string>
            <key>VERSION</key>
            <string>{version}</string>
        </dict>
    </auxinfo>
    <choices-outline><line choice="manual"/></choices-outline>
    <choice id="manual" title="SU_TITLE"><pkg-ref id="com.apple.pkg.InstallAssistant.macOSSonoma"/></choice>
    <pkg-ref id="com.apple.pkg.InstallAssistant.macOSSonoma" auth="Root" packageIdentifier="com.apple.pkg.InstallAssistant.macOSSonoma" version="19.6.01722899346">InstallAssistant.pkg</pkg-ref>
    <localization>
        <strings language="English"><![CDATA[
"SU_TITLE" = "{title}";
]]></strings>
    </localization>
</installer-gui-script>
""".encode()


def dist_update(title, version):
    return f"""<?xml version="1.0" encoding="utf-8" standalone="no"?>
<installer-gui-script minSpecVersion="1">
    <title>SU_TITLE</title>
    <options customize="never" rootVolumeOnly="true"/>
    <choices-outline><line choice="su"/></choices-outline>
    <choice id="su" title="SU_TITLE" versStr="SU_VERS"><pkg-ref id="com.example.pkg.Update"/></choice>
    <pkg-ref id="com.example.pkg.Update" auth="Root" version="1.2.3.45">ExampleUpdate.pkg</pkg-ref>
    <localization>
        <strings language="English"><![CDATA["SU_TITLE" = "{title}";
"SU_VERS" = "{version}";
"SU_SERVERCOMMENT" = "Fixture update";
/* a comment, as Apple's tables have */
"SU_DESCRIPTION" = '<!DOCTYPE html><html><body><p>Fixes "things".</p></body></html>';
]]></strings>
    </localization>
</installer-gui-script>
""".encode()


class Fixture:
    def __init__(self):
        self.files = {}          # path -> bytes
        self.products = []       # see the module docstring
        self.catalog_path = CATALOG_PATH
        self.catalog_gz_path = CATALOG_GZ_PATH
        self.catalog_binary_path = CATALOG_BINARY_PATH
        self.catalog_url = ""    # absolute, on catalog_host

    def product(self, pid):
        return next(p for p in self.products if p["id"] == pid)

    def summary(self):
        lines = [f"catalog {self.catalog_url} ({len(self.files[self.catalog_path])} bytes XML, "
                 f"{len(self.files[self.catalog_gz_path])} gzip)"]
        for p in self.products:
            lines.append(f"{p['id']}: {p['kind']} {p['title']!r} {p['version']} {p['build'] or '-'}")
            for k in p["packages"]:
                extra = f" chunklist {k['chunklist_url']}" if k["chunklist_url"] else ""
                if k["bad_chunk"] is not None:
                    extra += f" (chunk {k['bad_chunk']} wrong)"
                lines.append(f"  {k['url']} {k['size']} bytes{extra}")
        lines.append(f"{len(self.files)} files, {sum(len(b) for b in self.files.values())} bytes")
        return "\n".join(lines)


def build_fixture(pkg_host="swcdn.apple.com", catalog_host="swscan.apple.com", scheme="https", seed=1,
                  install_size=DEFAULT_INSTALL_SIZE):
    """The fake catalog and its files (see the module docstring)."""
    assert install_size > CHUNK, "the installer needs at least two chunks"
    fx = Fixture()
    base = f"{scheme}://{pkg_host}"
    fx.catalog_url = f"{scheme}://{catalog_host}{CATALOG_PATH}"
    catalog_products = {}

    def serve(path, data):
        assert path not in fx.files, path
        fx.files[path] = data
        return base + path

    def package(pid, name, data, with_chunklist=False, bad_chunk=None, pkm=False):
        d = f"/content/downloads/{pid[:3]}/{pid}/{name}"
        entry = {"Digest": hashlib.sha1(data).hexdigest(), "Size": len(data), "URL": serve(d, data)}
        info = {"url": entry["URL"], "path": d, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "sha1": entry["Digest"], "chunklist_url": None, "chunklist_path": None, "bad_chunk": None}
        if pkm:
            meta = plistlib.dumps({"identifier": f"com.example.pkg.{name}", "version": "1.2.3.45"})
            entry["MetadataURL"] = serve(d.rsplit(".", 1)[0] + ".pkm", meta)
        if with_chunklist:
            cl = chunklist(data, bad_chunk=bad_chunk, seed=seed)
            cpath = d.rsplit(".", 1)[0] + ".chunklist"
            entry["IntegrityDataURL"] = serve(cpath, cl)
            entry["IntegrityDataSize"] = len(cl)
            info.update(chunklist_url=entry["IntegrityDataURL"], chunklist_path=cpath, bad_chunk=bad_chunk)
        return entry, info

    def add(pid, kind, title, version, build, post, packages, dist, smd=None):
        prod = {"ServerMetadataURL": None, "Packages": [e for e, _ in packages], "PostDate": post,
                "Distributions": {}}
        dpath = f"/content/downloads/{pid[:3]}/{pid}/{pid}.English.dist"
        prod["Distributions"]["English"] = serve(dpath, dist)
        if smd is not None:
            prod["ServerMetadataURL"] = serve(f"/content/downloads/{pid[:3]}/{pid}/{pid}.smd", smd)
        else:
            del prod["ServerMetadataURL"]
        if kind == "installer":
            prod["ExtendedMetaInfo"] = {
                "InstallAssistantPackageIdentifiers": {
                    "InstallInfo": "com.apple.plist.InstallInfo",
                    "OSInstall": "com.apple.mpkg.OSInstall",
                    "SharedSupport": "com.apple.pkg.InstallAssistant.macOSSonoma",
                },
                "ProductType": "macOS",
            }
        catalog_products[pid] = prod
        fx.products.append({"id": pid, "kind": kind, "title": title, "version": version, "build": build,
                            "post_date": _unix(post), "dist_url": prod["Distributions"]["English"],
                            "smd_url": prod.get("ServerMetadataURL"), "packages": [i for _, i in packages]})

    # 001-INSTALL: the installer, verified by its chunklist.
    ia = pseudo_random("001-INSTALL/InstallAssistant.pkg", install_size, seed)
    manifest = plistlib.dumps({"ProductBuildVersion": "23G93", "ProductVersion": "14.6.1",
                               "BuildIdentities": [{"Info": {"DeviceClass": "j314sap"}}]})
    add("001-INSTALL", "installer", "macOS Sonoma", "14.6.1", "23G93", _date(2024, 8, 7),
        [package("001-INSTALL", "InstallAssistant.pkg", ia, with_chunklist=True),
         package("001-INSTALL", "BuildManifest.plist", manifest)],
        dist_installer("macOS Sonoma", "14.6.1", "23G93"))

    # 002-UPDATE: an update with .smd and a strings-table .dist.
    upd = pseudo_random("002-UPDATE/ExampleUpdate.pkg", 300 * 1024 + 7, seed)
    smd = plistlib.dumps({"CFBundleShortVersionString": "1.2.3",
                          "localization": {"English": {"title": "Example Update",
                                                       "description": "<p>Fixes things.</p>"}}})
    add("002-UPDATE", "update", "Example Update", "1.2.3", "", _date(2024, 7, 29, 10, 30),
        [package("002-UPDATE", "ExampleUpdate.pkg", upd, pkm=True)],
        dist_update("Example Update", "1.2.3"), smd)

    # 003-BROKEN: an installer whose chunklist is wrong for chunk 1.
    broken = pseudo_random("003-BROKEN/InstallAssistant.pkg", 2 * CHUNK + 4321, seed)
    add("003-BROKEN", "installer", "macOS Broken", "14.0", "23A344", _date(2023, 9, 26),
        [package("003-BROKEN", "InstallAssistant.pkg", broken, with_chunklist=True, bad_chunk=1)],
        dist_installer("macOS Broken", "14.0", "23A344"))

    catalog = {"CatalogVersion": 2, "ApplePostURL": f"http://{catalog_host}/stats",
               "IndexDate": _date(2024, 8, 8, 9, 15), "Products": catalog_products}
    xml = plistlib.dumps(catalog, fmt=plistlib.FMT_XML)
    fx.files[CATALOG_PATH] = xml
    fx.files[CATALOG_GZ_PATH] = gzip.compress(xml, mtime=0)
    fx.files[CATALOG_BINARY_PATH] = plistlib.dumps(catalog, fmt=plistlib.FMT_BINARY)
    return fx


def self_check(fx):
    """The fixture agrees with itself: the catalog lists what .products says,
    every URL is served, chunklists match their packages except bad_chunk."""
    cat = plistlib.loads(fx.files[fx.catalog_path])
    assert plistlib.loads(gzip.decompress(fx.files[fx.catalog_gz_path])) == cat
    assert plistlib.loads(fx.files[fx.catalog_binary_path]) == cat
    assert sorted(cat["Products"]) == [p["id"] for p in fx.products]
    for p in fx.products:
        entry = cat["Products"][p["id"]]
        assert ("ExtendedMetaInfo" in entry) == (p["kind"] == "installer")
        for k, e in zip(p["packages"], entry["Packages"]):
            data = fx.files[k["path"]]
            assert e["URL"] == k["url"] and e["Size"] == len(data) == k["size"]
            assert hashlib.sha256(data).hexdigest() == k["sha256"]
            if k["chunklist_path"]:
                chunks = parse_chunklist(fx.files[k["chunklist_path"]])
                assert sum(s for s, _ in chunks) == len(data)
                assert all(s == CHUNK for s, _ in chunks[:-1]) and 0 < chunks[-1][0] <= CHUNK
                off = 0
                for i, (s, digest) in enumerate(chunks):
                    good = hashlib.sha256(data[off:off + s]).digest() == digest
                    assert good == (i != k["bad_chunk"]), (p["id"], i)
                    off += s
    return True


def main(argv):
    args = list(argv)
    opts = {"install_size": DEFAULT_INSTALL_SIZE, "scheme": "https"}
    out = None
    while args:
        a = args.pop(0)
        if a == "--write":
            out = args.pop(0)
        elif a == "--install-size":
            opts["install_size"] = int(args.pop(0))
        elif a == "--scheme":
            opts["scheme"] = args.pop(0)
        else:
            print(f"usage: {sys.argv[0]} [--write DIR] [--install-size N] [--scheme http|https]", file=sys.stderr)
            return 2
    fx = build_fixture(**opts)
    self_check(fx)
    if out:
        import os
        for path, data in fx.files.items():
            target = os.path.join(out, path.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
    print(fx.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
