"""CatalogCase: one orchardd with an admin token and a catalog.limit per
test class, for the catalog's black-box tests (test_catalog*.py), and the
publish / API helpers they share.
"""

import os
import unittest

from harness import Orchard, make_tempdir, remove_tempdir
from origin import Origin
from upload import api, pattern_piece, pattern_sha256, put_stream

TOKEN = "test-token-5f2a9c"


def files_under(path):
    out = []
    for root, _, names in os.walk(path):
        out += [os.path.join(root, n) for n in names]
    return out


class CatalogCase(unittest.TestCase):
    limit = "1GiB"
    token = TOKEN
    catalog_toml = ""  # more [catalog] lines
    orchardd_args = ()  # more orchardd arguments (test_release_time.py: the test clock)

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir()
        cls.addClassCleanup(remove_tempdir, cls.tmp)
        cls.origin = Origin().start()
        cls.addClassCleanup(cls.origin.stop)
        admin = f'\n[admin]\ntoken = "{cls.token}"\n' if cls.token else ""
        cls.orchard = Orchard(cls.origin.port, workdir=cls.tmp,
                              extra_toml=admin + f'\n[catalog]\nlimit = "{cls.limit}"\n{cls.catalog_toml}',
                              extra_args=cls.orchardd_args)
        cls.addClassCleanup(cls.orchard.kill9)
        cls.addClassCleanup(cls.orchard.stop, expect_exit=0)
        cls.orchard.start()
        cls.port = cls.orchard.port
        cls.pkgdir = os.path.join(cls.orchard.state_dir, "packages")

    def publish(self, name, version, filename, size, seed, query="", checksum=True, headers=None, **kw):
        h = dict(headers or {})
        h.setdefault("Authorization", f"Bearer {self.token}")
        if checksum is True:
            h["X-Checksum-Sha256"] = pattern_sha256(seed, size)
        elif checksum:
            h["X-Checksum-Sha256"] = checksum
        target = f"/api/v1/packages/{name}/{version}/{filename}" + (f"?{query}" if query else "")
        return put_stream(self.port, target, size, pattern_piece(seed), headers=h, **kw)

    def call(self, method, path, **kw):
        return api(self.port, method, path, token=self.token, **kw)
