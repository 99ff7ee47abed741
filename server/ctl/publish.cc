// publish: hash the file, PUT it to /api/v1/packages/{name}/{version}/{filename}
// with the overrides as query parameters and the digest as
// X-Checksum-Sha256, then say what the box read from the package.
//
// Steps: open -> sha256 (streaming, with progress) -> PUT (streaming from
// the file, Expect: 100-continue, with progress) -> print the answer.
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <memory>

#include "server/ctl/commands.h"
#include "server/ctl/file_hash.h"
#include "server/ctl/progress.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;

std::string baseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

std::string join(const json& list, const char* sep) {
  std::string s;
  if (!list.is_array()) return s;
  for (const auto& v : list) {
    if (!s.empty()) s += sep;
    s += v.is_string() ? v.get<std::string>() : v.dump();
  }
  return s;
}

// "value" plus where the box took it from, when it says.
void field(const char* label, const std::string& value, const json& meta, const char* key) {
  if (value.empty()) return;
  std::string from;
  if (meta.contains("source") && meta["source"].is_object()) from = str(meta["source"], key);
  std::printf("  %-14s %s%s\n", label, value.c_str(), from.empty() ? "" : ("  (" + from + ")").c_str());
}

std::string signatureText(const json& sig) {
  auto flag = [&](const char* k) { return sig.contains(k) && sig[k].is_boolean() && sig[k].get<bool>(); };
  std::string s;
  if (!flag("present")) s = "unsigned";
  else if (flag("verified") && flag("trusted")) s = "signed, verified, trusted";
  else if (flag("verified")) s = "signed, verified, not trusted";
  else s = "signed, not verified";
  if (std::string problem = str(sig, "problem"); !problem.empty()) s += " (" + problem + ")";
  return s;
}

}  // namespace

namespace detail {

void printPublished(const Reply& r, const json& j) {
  const json meta = j.contains("metadata") ? j["metadata"] : json::object();
  uint64_t size = j.contains("size") && j["size"].is_number_unsigned() ? j["size"].get<uint64_t>() : 0;
  std::printf("%s %s %s (%s, %s)\n", r.status == 201 ? "published" : "already published, same bytes:",
              str(j, "name").c_str(), str(j, "version").c_str(), str(j, "filename").c_str(),
              formatBytes(size).c_str());
  field("sha256", str(j, "sha256"), json::object(), "");
  field("title", str(meta, "title"), meta, "title");
  std::string bundle = str(meta, "bundle_id");
  if (!str(meta, "bundle_version").empty()) bundle += (bundle.empty() ? "" : " ") + str(meta, "bundle_version");
  field("bundle", bundle, meta, "bundle_id");
  std::string pkg = str(meta, "package_id");
  if (!str(meta, "package_version").empty()) pkg += (pkg.empty() ? "" : " ") + str(meta, "package_version");
  field("package", pkg, meta, "package_id");
  field("min OS", str(meta, "min_os"), meta, "min_os");
  field("max OS", str(meta, "max_os"), meta, "max_os");
  field("archs", join(meta.value("archs", json::array()), ", "), meta, "archs");
  if (meta.contains("kind") && meta["kind"].is_string() && !meta["kind"].get<std::string>().empty())
    field("kind", meta["kind"].get<std::string>(), json::object(), "");
  else if (meta.contains("distribution") && meta["distribution"].is_boolean())
    field("kind", meta["distribution"].get<bool>() ? "distribution" : "component", json::object(), "");
  if (j.contains("signature") && j["signature"].is_object()) {
    const json& sig = j["signature"];
    field("signature", signatureText(sig), json::object(), "");
    if (sig.contains("chain") && sig["chain"].is_array())
      for (const auto& subject : sig["chain"])
        std::printf("  %-14s %s\n", "", subject.is_string() ? subject.get<std::string>().c_str() : subject.dump().c_str());
  }
  field("url", str(j, "url"), json::object(), "");
  field("manifest url", str(j, "manifest_url"), json::object(), "");
  if (j.contains("warnings") && j["warnings"].is_array())
    for (const auto& w : j["warnings"])
      std::printf("warning: %s\n", w.is_string() ? w.get<std::string>().c_str() : w.dump().c_str());
}

}  // namespace detail

int runPublish(Context& ctx, const PublishArgs& args) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(args.file.c_str(), "rb"), std::fclose);
  struct stat st{};
  if (!file || fstat(fileno(file.get()), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fprintf(stderr, "orchardctl: %s: %s\n", args.file.c_str(),
                 file ? "not a regular file" : std::strerror(errno));
    return kExitUsage;
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);

  std::string error;
  Progress hashing(stderr, ctx.terminal, SystemClock::instance(), "sha256");
  std::string digest = sha256File(file.get(), size, [&](uint64_t done, uint64_t total) { hashing.update(done, total); },
                                  &error);
  if (digest.empty()) {
    std::fprintf(stderr, "orchardctl: %s: %s\n", args.file.c_str(), error.c_str());
    return kExitUsage;
  }
  if (ctx.terminal) hashing.finish(size, size);

  Http& http = ctx.http;
  std::string path = "/api/v1/packages/" + http.escape(args.name) + "/" + http.escape(args.version) + "/" +
                     http.escape(args.filename.empty() ? baseName(args.file) : args.filename);
  std::string query;
  auto param = [&](const char* key, const std::string& value) {
    if (!value.empty()) detail::addQuery(&query, key, http.escape(value));
  };
  param("title", args.title);
  param("bundle_id", args.bundleId);
  param("bundle_version", args.bundleVersion);
  param("package_id", args.packageId);
  param("min_os", args.minOs);
  param("max_os", args.maxOs);
  std::string archs;
  for (const auto& a : args.archs) archs.append(archs.empty() ? "" : ",").append(a);
  param("archs", archs);

  Progress upload(stderr, ctx.terminal, SystemClock::instance(), "upload");
  uint64_t sent = 0;
  Reply r = http.putFile(path + query, file.get(), size, {{"X-Checksum-Sha256", digest}},
                         [&](uint64_t done, uint64_t total) {
                           sent = done;
                           upload.update(done, total);
                         });
  if (r.success()) upload.finish(sent, size);
  else upload.abandon();
  json j;
  if (auto rc = detail::takeJson(ctx, r, &j)) return *rc;
  detail::printPublished(r, j);
  return kExitOk;
}

}  // namespace orchard::ctl
