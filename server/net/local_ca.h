// The box's own certificate authority, for HTTPS without a configured
// certificate: a small CA and a leaf it signs, kept under
// storage.dir/tls/ and reused on every start.
//
//   ca.key, ca.pem     EC P-256, self-signed, 10 years, basicConstraints
//                      CA:TRUE pathlen 0. Made once; an MDM pushes ca.pem
//                      (served at GET /ca.pem) in a certificate profile.
//   key.pem, cert.pem  EC P-256, signed by the CA, serverAuth, the box's
//                      names and addresses as SANs, 397 days (Apple's
//                      ceiling for TLS server certificates is 398).
//
// The leaf is made again (same CA, so trust survives) when it is missing,
// unreadable, not signed by the CA, within 30 days of expiry, or missing a
// name or address the box now has. Keys are written 0600, every file by a
// rename of a complete temporary file, so a crash never leaves half a key.
#pragma once

#include <ctime>
#include <string>
#include <vector>

namespace orchard::server::tls {

struct LocalCertificate {
  std::string certPath;  // the leaf (cert.pem), for makeServerContext()
  std::string keyPath;
  std::string caPath;    // ca.pem
  std::string caPem;     // its text, served at /ca.pem
  std::string leafFingerprint;  // SHA-256, "AB:CD:…"
  std::string caFingerprint;
  bool madeCa = false;    // made at this call (first start)
  bool madeLeaf = false;
};

// names: DNS names for the SANs (host name, "localhost", catalog.base_url's
// host); addresses: IPv4/IPv6 literals. false with *error on failure.
bool ensureLocalCertificate(const std::string& storageDir, const std::vector<std::string>& names,
                            const std::vector<std::string>& addresses, std::time_t now, LocalCertificate* out,
                            std::string* error);

// This machine's names and addresses for the SANs: the host name, its
// fully qualified name when different, "localhost", `extraName` when not
// empty, and every interface address except link-local ones.
void localNamesAndAddresses(const std::string& extraName, std::vector<std::string>* names,
                            std::vector<std::string>* addresses);

}  // namespace orchard::server::tls
