// Parsing XML that came from an uploaded file (a package's Distribution,
// PackageInfo, its xar table of contents), and the few tree walks the
// readers need. Internal to catalog/: the libxml2 types are only forward
// declared here.
//
// The parse refuses any document type declaration (the first thing a
// billion-laughs or external-entity attack needs), never loads anything
// from the network, never substitutes entities and keeps libxml2's default
// depth limit (256, no XML_PARSE_HUGE). Real installer XML has no DOCTYPE.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

struct _xmlDoc;
struct _xmlNode;

namespace orchard::catalog::xml {

using Node = const _xmlNode*;

struct DocFree {
  void operator()(_xmlDoc* d) const noexcept;
};
using Doc = std::unique_ptr<_xmlDoc, DocFree>;

// Parses `bytes` (already bounded in size by the caller). Invalid when it
// is not well-formed XML or declares a DOCTYPE; `what` is the static
// context of that error ("Distribution is not well-formed XML").
Result<Doc> parseUntrusted(std::string_view bytes, const char* what);

Node root(const Doc& doc);
// Element children (namespaces ignored) named `name`, in document order.
std::vector<Node> children(Node parent, const char* name);
Node firstChild(Node parent, const char* name);  // nullptr when none
// Element descendants named `name` below `parent`, in document order.
std::vector<Node> descendants(Node parent, const char* name);
// Counts the elements named `name` anywhere below `parent`.
size_t countDescendants(Node parent, const char* name);
// Attribute value, "" when absent.
std::string attr(Node n, const char* name);
// Text content of an element with surrounding whitespace removed.
std::string text(Node n);
// Local name of an element.
std::string_view name(Node n);

}  // namespace orchard::catalog::xml
