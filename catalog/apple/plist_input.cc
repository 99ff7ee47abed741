// The checks in front of libplist for untrusted plists (see plist_input.h).
//
// Hard parts:
//  - The XML check only bounds libplist if both parsers see the same
//    element structure. libplist 2.2's own XML reader skips double-quoted
//    runs while looking for the end of a processing instruction, a DOCTYPE
//    or a tag, and ends a DOCTYPE at the first "]>"; libxml2 does neither.
//    A document can therefore hide closing tags from libplist inside what
//    libxml2 reads as a PI, a comment after a fake internal subset, or an
//    attribute value, and nest without bound in libplist's view while
//    libxml2 sees depth 1. So the check refuses every construct where the
//    two differ: processing instructions (the XML declaration is not one),
//    any internal DTD subset, DOCTYPE identifiers with quotes, brackets or
//    angle brackets, attribute values holding '"', '\'' or '>', and any
//    document libxml2 reads through an encoding conversion (libplist
//    reads bytes as UTF-8). Real plists have none of these.
//  - The binary walk mirrors libplist's reader exactly (big-endian sizes of
//    1 to 255 bytes of which the last 8 count, the 0xF length extension, a
//    dictionary's keys then values, the same range checks), so an object
//    graph it accepts is the graph libplist will build.
//  - libxml2 is initialised once; its errors are silenced per parse.
#include "catalog/apple/plist_input.h"

#include <plist/plist.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
#include <libxml/globals.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

namespace orchard::catalog::apple::detail {

void PlistFree::operator()(void* p) const noexcept { plist_free(static_cast<plist_t>(p)); }

namespace {

// ---- XML ----

struct XmlCheck {
  size_t depth = 0;
  uint64_t nodesLeft = 0;
  bool bad = false;
};

XmlCheck* state(void* ctx) { return static_cast<XmlCheck*>(static_cast<xmlParserCtxtPtr>(ctx)->_private); }

void refuse(void* ctx) {
  state(ctx)->bad = true;
  xmlStopParser(static_cast<xmlParserCtxtPtr>(ctx));
}

bool hasAny(const xmlChar* s, const char* chars) {
  return s && std::strpbrk(reinterpret_cast<const char*>(s), chars) != nullptr;
}

void onStartElement(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*, int, const xmlChar**, int nbAttributes,
                    int, const xmlChar** attributes) {
  XmlCheck* s = state(ctx);
  if (++s->depth > kPlistMaxDepth || s->nodesLeft == 0) return refuse(ctx);
  --s->nodesLeft;
  // Five pointers per attribute: localname, prefix, URI, value, end.
  for (int i = 0; i < nbAttributes; ++i) {
    const xmlChar* v = attributes[i * 5 + 3];
    const xmlChar* end = attributes[i * 5 + 4];
    for (const xmlChar* c = v; c < end; ++c)
      if (*c == '"' || *c == '\'' || *c == '>') return refuse(ctx);
  }
}

void onEndElement(void* ctx, const xmlChar*, const xmlChar*, const xmlChar*) {
  XmlCheck* s = state(ctx);
  if (s->depth > 0) --s->depth;
}

void onInternalSubset(void* ctx, const xmlChar*, const xmlChar* externalId, const xmlChar* systemId) {
  auto* ctxt = static_cast<xmlParserCtxtPtr>(ctx);
  // libxml2 calls this after the external ID with blanks skipped: the next
  // byte is '[' exactly when an internal subset follows.
  const bool internal = ctxt->input && ctxt->input->cur && *ctxt->input->cur == '[';
  if (internal || hasAny(externalId, "\"'[]<>") || hasAny(systemId, "\"'[]<>")) refuse(ctx);
}

void onProcessingInstruction(void* ctx, const xmlChar*, const xmlChar*) { refuse(ctx); }

void onEntityDecl(void* ctx, const xmlChar*, int, const xmlChar*, const xmlChar*, xmlChar*) { refuse(ctx); }

void onSilentError(void*, xmlErrorPtr) {}
void onSilentGenericError(void*, const char*, ...) {}

// libxml2 reports some problems (an encoding it cannot convert) through
// its generic error function, to stderr by default, whatever the parser's
// options: silenced for one parse on this thread (the function is a
// per-thread setting in a threaded libxml2), then put back.
class QuietLibxml {
 public:
  QuietLibxml() : fn_(xmlGenericError), ctx_(xmlGenericErrorContext) {
    xmlSetGenericErrorFunc(nullptr, onSilentGenericError);
  }
  ~QuietLibxml() { xmlSetGenericErrorFunc(ctx_, fn_); }
  QuietLibxml(const QuietLibxml&) = delete;
  QuietLibxml& operator=(const QuietLibxml&) = delete;

 private:
  xmlGenericErrorFunc fn_;
  void* ctx_;
};

}  // namespace

bool xmlPlistShapeOk(std::string_view xml, uint64_t maxNodes) {
  static std::once_flag once;
  std::call_once(once, [] { xmlInitParser(); });
  if (xml.empty() || xml.size() > static_cast<size_t>(std::numeric_limits<int>::max())) return false;
  QuietLibxml quiet;
  xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(xml.data(), static_cast<int>(xml.size()));
  if (!ctxt) return false;
  // Only the callbacks below: no tree is built, nothing is loaded.
  xmlSAXHandler handler;
  std::memset(&handler, 0, sizeof handler);
  handler.initialized = XML_SAX2_MAGIC;
  handler.startElementNs = onStartElement;
  handler.endElementNs = onEndElement;
  handler.internalSubset = onInternalSubset;
  handler.processingInstruction = onProcessingInstruction;
  handler.entityDecl = onEntityDecl;
  handler.serror = onSilentError;
  *ctxt->sax = handler;
  XmlCheck check;
  check.nodesLeft = maxNodes;
  ctxt->_private = &check;
  xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlParseDocument(ctxt);
  // libplist reads the bytes as UTF-8: a document libxml2 had to convert
  // (UTF-16 by its first bytes, another declared encoding) has another
  // structure in libplist's view.
  const bool converted = ctxt->input && ctxt->input->buf && ctxt->input->buf->encoder;
  const bool good = ctxt->wellFormed && !check.bad && !converted;
  if (ctxt->myDoc) xmlFreeDoc(ctxt->myDoc);
  ctxt->myDoc = nullptr;
  xmlFreeParserCtxt(ctxt);
  return good;
}

// ---- binary ----

namespace {

constexpr size_t kTrailerSize = 32;
constexpr size_t kMagicSize = 8;  // "bplist00"

// libplist's UINT_TO_HOST: big-endian, n bytes; for n > 8 the last 8.
uint64_t beUint(const unsigned char* p, size_t n) {
  if (n > 8) {
    p += n - 8;
    n = 8;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

struct BinaryWalk {
  const unsigned char* data = nullptr;
  uint64_t tableOffset = 0;  // objects live below it
  uint64_t numObjects = 0;
  uint8_t offsetSize = 0;
  uint8_t refSize = 0;
  uint64_t maxPayload = 0;
  uint64_t refsLeft = 0;     // budget: references followed
  uint64_t payload = 0;      // string and data bytes libplist will copy
  std::vector<bool> seen;    // containers already expanded

  // Where object `index` starts, or false when libplist would refuse it.
  bool objectAt(uint64_t index, uint64_t* at) const {
    if (index >= numObjects) return false;
    const uint64_t off = beUint(data + tableOffset + index * offsetSize, offsetSize);
    if (off >= tableOffset) return false;
    *at = off;
    return true;
  }

  // A reference stored at `pos` (libplist's range check), or false.
  bool refAt(uint64_t pos, uint64_t* index) const {
    if (refSize > tableOffset || pos > tableOffset - refSize) return false;
    *index = beUint(data + pos, refSize);
    return *index < numObjects;
  }
};

// One open container on the walk's stack.
struct Frame {
  uint64_t refs = 0;   // where its references start
  uint64_t count = 0;  // entries (a dictionary has 2 * count references)
  bool dict = false;
  uint64_t next = 0;   // next reference to follow, 0 .. refs total
};

enum : uint8_t { kNull = 0x00, kInt = 0x10, kReal = 0x20, kDate = 0x30, kData = 0x40, kAscii = 0x50,
                 kUtf16 = 0x60, kUid = 0x80, kArray = 0xA0, kSet = 0xC0, kDict = 0xD0 };

}  // namespace

bool binaryPlistShapeOk(std::string_view bytes, const PlistBounds& bounds) {
  const size_t length = bytes.size();
  if (length < kMagicSize + kTrailerSize || std::memcmp(bytes.data(), "bplist00", kMagicSize) != 0) return false;
  BinaryWalk w;
  w.data = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned char* trailer = w.data + length - kTrailerSize;
  w.offsetSize = trailer[6];
  w.refSize = trailer[7];
  w.numObjects = beUint(trailer + 8, 8);
  const uint64_t root = beUint(trailer + 16, 8);
  w.tableOffset = beUint(trailer + 24, 8);
  const uint64_t end = length - kTrailerSize;
  if (w.numObjects == 0 || w.offsetSize == 0 || w.refSize == 0 || root >= w.numObjects) return false;
  if (w.tableOffset < kMagicSize || w.tableOffset >= end) return false;
  if (w.numObjects > (end - w.tableOffset) / w.offsetSize) return false;  // the table fits
  // (libplist reads an offset or a reference of 3, 5, 6 or 7 bytes as 8
  // bytes from its start: the 32-byte trailer keeps that in the buffer.)
  w.maxPayload = bounds.maxPayload;
  w.refsLeft = std::min<uint64_t>(length, bounds.maxNodes > 0 ? bounds.maxNodes - 1 : 0);
  w.seen.assign(w.numObjects, false);  // numObjects <= length

  std::vector<Frame> stack;
  uint64_t pending = root;  // the object to visit next
  while (true) {
    uint64_t at = 0;
    if (!w.objectAt(pending, &at)) return false;
    const uint8_t marker = w.data[at];
    const uint8_t type = marker & 0xF0;
    uint64_t size = marker & 0x0F;
    uint64_t pos = at + 1;
    const bool sized = type == kData || type == kAscii || type == kUtf16 || type == kArray || type == kSet ||
                       type == kDict;
    if (sized && size == 0x0F) {
      // The length follows as an integer object of 2^n bytes.
      if (pos >= length || (w.data[pos] & 0xF0) != kInt) return false;
      const uint64_t n = uint64_t(1) << (w.data[pos] & 0x0F);
      ++pos;
      if (pos + n > w.tableOffset) return false;
      size = beUint(w.data + pos, n);
      pos += n;
    }
    switch (type) {
      case kData:
      case kAscii:
      case kUtf16: {
        const uint64_t unit = type == kUtf16 ? 2 : 1;
        if (size > w.tableOffset / unit || pos + size * unit > w.tableOffset) return false;
        // UTF-16 becomes up to 3 bytes of UTF-8 per unit.
        const uint64_t copied = type == kUtf16 ? size * 3 : size;
        if (copied > w.maxPayload - w.payload) return false;
        w.payload += copied;
        break;
      }
      case kArray:
      case kSet:
      case kDict: {
        if (w.seen[pending]) return false;  // shared or cyclic container
        w.seen[pending] = true;
        if (stack.size() >= kPlistMaxDepth) return false;
        stack.push_back(Frame{pos, size, type == kDict, 0});
        break;
      }
      case kNull:
      case kInt:
      case kReal:
      case kDate:
      case kUid:
        break;  // fixed-size values: libplist checks their bytes itself
      default:
        return false;  // libplist refuses unknown types
    }
    // Next reference: from the innermost container that has one left.
    bool found = false;
    while (!stack.empty()) {
      Frame& f = stack.back();
      const uint64_t total = f.dict ? f.count * 2 : f.count;
      if (f.dict && f.count > std::numeric_limits<uint64_t>::max() / 2) return false;
      if (f.next < total) {
        if (w.refsLeft == 0) return false;
        --w.refsLeft;
        // libplist's own arithmetic: key j at j, value j at j + count.
        const uint64_t slot = f.next;
        ++f.next;
        if (slot > w.tableOffset) return false;  // the slot's bytes cannot be in range
        if (!w.refAt(f.refs + slot * w.refSize, &pending)) return false;
        found = true;
        break;
      }
      stack.pop_back();
    }
    if (!found) return true;
  }
}

Result<PlistPtr> parseUntrustedPlist(std::string_view bytes, const PlistBounds& bounds, const char* what) {
  if (bytes.size() > std::numeric_limits<uint32_t>::max()) return Error{Errc::Invalid, 0, what};
  const bool binary = bytes.size() >= kMagicSize && std::memcmp(bytes.data(), "bplist00", kMagicSize) == 0;
  if (binary ? !binaryPlistShapeOk(bytes, bounds) : !xmlPlistShapeOk(bytes, bounds.maxNodes))
    return Error{Errc::Invalid, 0, what};
  plist_t root = nullptr;
  if (!binary) {
    plist_from_xml(bytes.data(), static_cast<uint32_t>(bytes.size()), &root);
    if (!root) return Error{Errc::Invalid, 0, what};
    return PlistPtr(root);
  }
  // Binary: read, write as XML, check and read that (see the header).
  plist_from_bin(bytes.data(), static_cast<uint32_t>(bytes.size()), &root);
  if (!root) return Error{Errc::Invalid, 0, what};
  char* xml = nullptr;
  uint32_t length = 0;
  {
    PlistPtr bin(root);
    plist_to_xml(bin.get(), &xml, &length);
  }
  if (!xml) return Error{Errc::Invalid, 0, what};
  std::unique_ptr<char, void (*)(char*)> text(xml, plist_to_xml_free);
  // The XML has one element more than the binary has nodes: <plist>.
  if (!xmlPlistShapeOk(std::string_view(xml, length), bounds.maxNodes + 1)) return Error{Errc::Invalid, 0, what};
  root = nullptr;
  plist_from_xml(xml, length, &root);
  if (!root) return Error{Errc::Invalid, 0, what};
  return PlistPtr(root);
}

}  // namespace orchard::catalog::apple::detail
