// Untrusted XML with libxml2 (see safe_xml.h).
//
// Hard part: libxml2 handles entities even when they are not substituted
// (it parses an entity's replacement text once to build its reference
// node), so "don't pass XML_PARSE_NOENT" alone does not make an entity
// bomb cheap. The parse therefore stops at the DOCTYPE itself: the SAX
// internalSubset callback fires as soon as "<!DOCTYPE name" is read, before
// any entity declaration, and halts the parser. libxml2 is initialised
// once (xmlInitParser is not thread-safe on first use).
#include "catalog/safe_xml.h"

#include <limits>
#include <mutex>

#include <libxml/parser.h>
#include <libxml/tree.h>

namespace orchard::catalog::xml {

namespace {

struct ParseState {
  bool sawDoctype = false;
};

void onInternalSubset(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
  static_cast<ParseState*>(ctxt->_private)->sawDoctype = true;
  xmlStopParser(ctxt);
}

bool isElement(Node n, const char* want) {
  return n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, reinterpret_cast<const xmlChar*>(want)) == 0;
}

}  // namespace

void DocFree::operator()(_xmlDoc* d) const noexcept { xmlFreeDoc(d); }

Result<Doc> parseUntrusted(std::string_view bytes, const char* what) {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return Error{Errc::Invalid, 0, what};
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (!ctxt) return Error{Errc::NoSpace, ENOMEM, "xml: cannot allocate a parser"};
  ParseState state;
  ctxt->_private = &state;
  ctxt->sax->internalSubset = onInternalSubset;
  ctxt->sax->externalSubset = nullptr;
  const int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
  xmlDocPtr doc = xmlCtxtReadMemory(ctxt, bytes.data(), static_cast<int>(bytes.size()), "untrusted.xml", nullptr,
                                    options);
  const bool good = doc && ctxt->wellFormed && !state.sawDoctype && xmlDocGetRootElement(doc);
  xmlFreeParserCtxt(ctxt);
  if (!good) {
    if (doc) xmlFreeDoc(doc);
    return Error{Errc::Invalid, 0, what};
  }
  return Doc(doc);
}

Node root(const Doc& doc) { return xmlDocGetRootElement(doc.get()); }

std::vector<Node> children(Node parent, const char* name) {
  std::vector<Node> out;
  if (!parent) return out;
  for (Node c = parent->children; c; c = c->next)
    if (isElement(c, name)) out.push_back(c);
  return out;
}

Node firstChild(Node parent, const char* name) {
  if (!parent) return nullptr;
  for (Node c = parent->children; c; c = c->next)
    if (isElement(c, name)) return c;
  return nullptr;
}

namespace {

// Pre-order walk without recursion (depth is bounded by libxml2, but a
// loop costs nothing and needs no stack reasoning).
template <typename F>
void walk(Node parent, F&& visit) {
  if (!parent) return;
  Node n = parent->children;
  while (n) {
    visit(n);
    if (n->children && n->type == XML_ELEMENT_NODE) {
      n = n->children;
      continue;
    }
    while (n && !n->next) {
      n = n->parent;
      if (n == parent) return;
    }
    if (n) n = n->next;
  }
}

}  // namespace

std::vector<Node> descendants(Node parent, const char* name) {
  std::vector<Node> out;
  walk(parent, [&](Node n) {
    if (isElement(n, name)) out.push_back(n);
  });
  return out;
}

size_t countDescendants(Node parent, const char* name) {
  size_t count = 0;
  walk(parent, [&](Node n) { count += isElement(n, name); });
  return count;
}

std::string attr(Node n, const char* name) {
  if (!n) return {};
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return {};
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return out;
}

std::string text(Node n) {
  if (!n) return {};
  xmlChar* v = xmlNodeGetContent(n);
  if (!v) return {};
  std::string out(reinterpret_cast<const char*>(v));
  xmlFree(v);
  const char* ws = " \t\r\n";
  size_t b = out.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  return out.substr(b, out.find_last_not_of(ws) - b + 1);
}

std::string_view name(Node n) { return n ? reinterpret_cast<const char*>(n->name) : ""; }

}  // namespace orchard::catalog::xml
