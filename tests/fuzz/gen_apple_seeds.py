#!/usr/bin/env python3
"""Writes the seeds of the Apple catalog fuzz targets: corpus/sucatalog/
(a small catalog in Apple's shape as XML, gzip and binary plist),
corpus/apple_dist/ (.dist files), corpus/apple_smd/ (.smd plists) and
corpus/chunklist/ (chunklist + data + write schedule, fields split at
"\\n--\\n", see chunklist_fuzz.cc). Every seed stays under the fuzz targets'
max_len (tests/fuzz/CMakeLists.txt). Chunklists come from
tests/blackbox/apple_fixture.py, so the seeds and the black-box fixture
agree on the layout.
Run from tests/fuzz/; the output is committed, rerun only when the shapes
change."""
import datetime
import gzip
import os
import plistlib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "blackbox"))
import apple_fixture  # noqa: E402


def write(target, name, data):
    os.makedirs(os.path.join("corpus", target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 4096, (target, name, len(data))
    with open(os.path.join("corpus", target, name), "wb") as f:
        f.write(data)


def catalog():
    base = "https://swcdn.apple.com/content/downloads/41/51/052-96247/x"
    return {
        "CatalogVersion": 2,
        "ApplePostURL": "http://swpost.apple.com/stats",
        "IndexDate": datetime.datetime(2024, 8, 8, 9, 15),
        "Products": {
            "052-96247": {
                "ServerMetadataURL": f"{base}/052-96247.smd",
                "Packages": [
                    {"Digest": "3f1f4d2e2b5d4c1a0f9e8d7c6b5a493827161504", "Size": 13338374016,
                     "MetadataURL": f"{base}/InstallAssistant.pkm", "URL": f"{base}/InstallAssistant.pkg",
                     "IntegrityDataURL": f"{base}/InstallAssistant.pkg.integrityDataV1",
                     "IntegrityDataSize": 38440},
                    {"Size": 1837, "URL": "http://swcdn.apple.com:8080/x/BuildManifest.plist?a=1"},
                ],
                "PostDate": datetime.datetime(2024, 8, 7, 17, 0),
                "Distributions": {"English": f"{base}/052-96247.English.dist", "fr": f"{base}/052-96247.fr.dist"},
                "ExtendedMetaInfo": {
                    "InstallAssistantPackageIdentifiers": {"SharedSupport": "com.apple.pkg.InstallAssistant"},
                    "ProductType": "macOS",
                },
            },
            "zzzz-UPDATE": {
                "Packages": [{"Size": 5, "URL": "https://swcdn.apple.com/u/Update.pkg"}],
                "Distributions": {"en": "https://swdist.apple.com/u/u.en.dist"},
            },
            "bad-PRODUCT": {"Packages": [{"Size": 0, "URL": "ftp://x/y"}]},
        },
    }


def main():
    cat = catalog()
    xml = plistlib.dumps(cat)
    write("sucatalog", "catalog.xml", xml)
    write("sucatalog", "catalog.gz", gzip.compress(xml, mtime=0))
    write("sucatalog", "catalog.bplist", plistlib.dumps(cat, fmt=plistlib.FMT_BINARY))

    write("apple_dist", "installer.dist", apple_fixture.dist_installer("macOS Sonoma", "14.6.1", "23G93"))
    write("apple_dist", "update.dist", apple_fixture.dist_update("Example Update", "1.2.3"))
    write("apple_dist", "pkgref.dist", """<?xml version="1.0"?>
<installer-gui-script minSpecVersion="1">
  <title>SU_TITLE</title>
  <product id="com.example" version="3.0"/>
  <pkg-ref id="a" version="2.1">a.pkg</pkg-ref>
  <localization>
    <strings language="fr"><![CDATA["SU_TITLE" = "Titre";]]></strings>
    <strings language="en"><![CDATA[/* c */ SU_TITLE = 'T\\U00e9st \\"q\\"'; // c
"SU_VERS";
"X" = ;]]></strings>
  </localization>
</installer-gui-script>
""")

    smd = {"CFBundleShortVersionString": "17.6",
           "localization": {"English": {"title": "Safari", "description": "<p>Fixes.</p>"}}}
    write("apple_smd", "update.smd", plistlib.dumps(smd))
    write("apple_smd", "update.bsmd", plistlib.dumps(smd, fmt=plistlib.FMT_BINARY))
    write("apple_smd", "odd.smd", plistlib.dumps({"CFBundleShortVersionString": 17,
                                                  "localization": {"en": {"title": "T"}, "English": "x"}}))

    data = apple_fixture.pseudo_random("chunklist-seed", 700, 1)
    good = apple_fixture.chunklist(data, chunk=256)
    sep = b"\n--\n"
    assert sep not in good and sep not in data
    write("chunklist", "good", good + sep + data + sep + b"\x07\x3f\xff")
    changed = data[:300] + bytes([data[300] ^ 1]) + data[301:]
    write("chunklist", "changed_byte", good + sep + changed + sep + b"\x00")
    write("chunklist", "short", good + sep + data[:-1])


if __name__ == "__main__":
    main()
