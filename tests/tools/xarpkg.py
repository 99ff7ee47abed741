#!/usr/bin/env python3
"""Writes macOS flat packages (xar archives) for the catalog's tests.

A flat package is a xar: a 28-byte big-endian header, a zlib-compressed XML
table of contents (TOC), then the heap. The heap starts with the TOC's
checksum (SHA-1 of the compressed TOC) and, when signed, an RSA PKCS#1 v1.5
signature over that checksum (the digest is signed directly, as xar's
RSA_sign(NID_sha1, ...) does); the signing certificates sit in the TOC,
leaf first. File data follows, stored uncompressed.

  xarpkg.py ca DIR [--prefix NAME] [--bits N]
      DIR/NAME-root.pem, NAME-inter.pem, NAME-leaf.pem, NAME-leaf.key
      (root -> intermediate -> leaf; RSA, SHA-256 certificates).
  xarpkg.py build OUT [--distribution FILE] [--component ID=FILE ...]
      [--packageinfo FILE] [--payload-size N] [--sign DIR/NAME]
      [--no-intermediate] [--tamper toc|toc-nosum|signature|checksum]
      --distribution and --component make a product archive (Distribution,
      ID/PackageInfo, ID/Payload); --packageinfo alone a component package.
      --tamper changes the archive after signing: `toc` edits the TOC and
      stores its new checksum (the signature no longer matches), `toc-nosum`
      edits it and keeps the old checksum, `signature` and `checksum` flip a
      byte of the signature or of the stored checksum.

Only the standard library and `cryptography` (python3-cryptography).
"""
import argparse
import base64
import datetime
import hashlib
import os
import struct
import sys
import zlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.x509.oid import NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Orchard Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, subject_key, issuer, issuer_key, ca):
    now = datetime.datetime(2020, 1, 1)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=365 * 40))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return b.sign(issuer_key, hashes.SHA256())


def make_ca(directory, prefix, bits):
    os.makedirs(directory, exist_ok=True)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=bits) for _ in range(3)]
    root_name, inter_name, leaf_name = (_name(f"{prefix} {n}") for n in ("Root CA", "Intermediate CA", "Installer"))
    root = _cert(root_name, keys[0], root_name, keys[0], True)
    inter = _cert(inter_name, keys[1], root_name, keys[0], True)
    leaf = _cert(leaf_name, keys[2], inter_name, keys[1], False)
    for what, cert in (("root", root), ("inter", inter), ("leaf", leaf)):
        with open(os.path.join(directory, f"{prefix}-{what}.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(directory, f"{prefix}-leaf.key"), "wb") as f:
        f.write(keys[2].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))


def _esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Tree:
    """Files to store: nested dict name -> bytes (file) or Tree (directory)."""

    def __init__(self):
        self.entries = {}

    def add(self, path, data):
        parts = path.split("/")
        node = self
        for p in parts[:-1]:
            node = node.entries.setdefault(p, Tree())
        node.entries[parts[-1]] = data


def _toc_files(tree, heap, base, ids, indent):
    out = []
    for name, item in tree.entries.items():
        ids[0] += 1
        pad = " " * indent
        if isinstance(item, Tree):
            out.append(f'{pad}<file id="{ids[0]}"><name>{_esc(name)}</name><type>directory</type>')
            out.extend(_toc_files(item, heap, base, ids, indent + 1))
            out.append(f"{pad}</file>")
            continue
        offset = base + len(heap)  # heap offsets: data follows the checksum and signature
        heap.extend(item)
        digest = hashlib.sha1(item).hexdigest()
        out.append(f'{pad}<file id="{ids[0]}"><name>{_esc(name)}</name><type>file</type>'
                   f"<data><length>{len(item)}</length><offset>{offset}</offset><size>{len(item)}</size>"
                   f'<encoding style="application/octet-stream"/>'
                   f'<archived-checksum style="sha1">{digest}</archived-checksum>'
                   f'<extracted-checksum style="sha1">{digest}</extracted-checksum></data></file>')
    return out


def _toc(tree, data_base, certs, sig_size):
    heap = bytearray()
    files = _toc_files(tree, heap, data_base, [0], 2)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<xar>", " <toc>",
             '  <checksum style="sha1"><offset>0</offset><size>20</size></checksum>',
             "  <creation-time>2024-01-01T00:00:00</creation-time>"]
    if certs:
        lines.append(f'  <signature style="RSA"><offset>20</offset><size>{sig_size}</size>'
                     '<KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#"><X509Data>')
        for c in certs:
            b64 = base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            lines.append("   <X509Certificate>" + b64 + "</X509Certificate>")
        lines.append("  </X509Data></KeyInfo></signature>")
    lines.extend(files)
    lines += [" </toc>", "</xar>", ""]
    return "\n".join(lines).encode(), bytes(heap)


def build(args):
    tree = Tree()
    payload = bytes((i * 7) & 0xFF for i in range(args.payload_size))
    if args.packageinfo:
        tree.add("PackageInfo", open(args.packageinfo, "rb").read())
        tree.add("Payload", payload)
    if args.distribution:
        tree.add("Distribution", open(args.distribution, "rb").read())
    for comp in args.component:
        ident, path = comp.split("=", 1)
        tree.add(f"{ident}/PackageInfo", open(path, "rb").read())
        tree.add(f"{ident}/Payload", payload)

    certs, key = [], None
    if args.sign:
        d, prefix = os.path.split(args.sign)
        key = serialization.load_pem_private_key(open(os.path.join(d, prefix + "-leaf.key"), "rb").read(), None)
        names = ["leaf"] if args.no_intermediate else ["leaf", "inter"]
        certs = [x509.load_pem_x509_certificate(open(os.path.join(d, f"{prefix}-{n}.pem"), "rb").read())
                 for n in names]
    sig_size = key.key_size // 8 if key else 0
    toc_xml, data = _toc(tree, 20 + sig_size, certs, sig_size)
    toc = zlib.compress(toc_xml, 9)
    checksum = hashlib.sha1(toc).digest()
    signature = key.sign(checksum, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1())) if key else b""

    if args.tamper in ("toc", "toc-nosum"):
        toc_xml = toc_xml.replace(b"2024-01-01", b"2024-01-02")
        toc = zlib.compress(toc_xml, 9)
        if args.tamper == "toc":
            checksum = hashlib.sha1(toc).digest()
    elif args.tamper == "signature":
        signature = signature[:10] + bytes([signature[10] ^ 1]) + signature[11:]
    elif args.tamper == "checksum":
        checksum = bytes([checksum[0] ^ 1]) + checksum[1:]

    header = struct.pack(">4sHHQQI", b"xar!", 28, 1, len(toc), len(toc_xml), 1)
    with open(args.out, "wb") as f:
        f.write(header + toc + checksum + signature + data)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("ca")
    c.add_argument("dir")
    c.add_argument("--prefix", default="test")
    c.add_argument("--bits", type=int, default=2048)
    b = sub.add_parser("build")
    b.add_argument("out")
    b.add_argument("--distribution")
    b.add_argument("--component", action="append", default=[])
    b.add_argument("--packageinfo")
    b.add_argument("--payload-size", type=int, default=1024)
    b.add_argument("--sign")
    b.add_argument("--no-intermediate", action="store_true")
    b.add_argument("--tamper", choices=["toc", "toc-nosum", "signature", "checksum"])
    args = p.parse_args()
    if args.cmd == "ca":
        make_ca(args.dir, args.prefix, args.bits)
    else:
        build(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
