// Rendering of the Apple-content answers and the mirror follower's
// decisions: see apple_view.h.
#include "server/ctl/apple_view.h"

#include <cctype>
#include <cmath>
#include <string_view>

#include "common/time_window.h"
#include "config/params.h"
#include "server/ctl/table.h"

namespace orchard::ctl {
namespace {

using nlohmann::json;

const json& field(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A string field as is, a number or boolean as JSON writes it; "" when
// absent or null (arrays and objects too: they are not one value).
std::string str(const json& j, const char* key) {
  const json& v = field(j, key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  return "";
}

std::string orDash(std::string s) { return s.empty() ? "-" : s; }

// A count or byte size: a non-negative number (fractions dropped).
std::optional<uint64_t> count(const json& j, const char* key) {
  const json& v = field(j, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    int64_t n = v.get<int64_t>();
    return n >= 0 ? std::optional<uint64_t>(static_cast<uint64_t>(n)) : std::nullopt;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d >= 0 && d < 9.2e18) return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

bool flag(const json& j, const char* key) {
  const json& v = field(j, key);
  return v.is_boolean() && v.get<bool>();
}

// A percent field as "37%" (fractions dropped, so 99.9 is not shown as done).
std::string percentText(const json& j, const char* key) {
  auto p = count(j, key);
  if (!p) return "-";
  return std::to_string(*p > 100 ? 100 : *p) + "%";
}

std::string bytesText(const json& j, const char* key) {
  auto n = count(j, key);
  return n ? formatBytes(*n) : "-";
}

std::string rateText(const json& j) {
  auto r = count(j, "rate");
  return r && *r > 0 ? formatBytes(*r) + "/s" : "-";
}

std::string etaText(const json& j) {
  auto e = count(j, "eta_seconds");
  return e ? formatDuration(static_cast<int64_t>(*e)) : "-";
}

const json& array(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const json& v = field(j, key);
  return v.is_array() ? v : kEmpty;
}

std::string plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// "6h", "90m", "45s": an interval in seconds as the config writes durations.
std::string intervalText(const json& j, const char* key) {
  auto s = count(j, key);
  if (!s || *s > 100ull * 365 * 86400) return str(j, key).empty() ? "-" : str(j, key);
  return config::formatDuration(static_cast<int64_t>(*s) * 1000);
}

// A value that may be an object of scalars ("last_run"): "key value, ..."
// (times as they come); a scalar as text.
std::string summary(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean()) return v.dump();
  if (!v.is_object()) return "";
  std::string s;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const json& x = it.value();
    if (x.is_null() || x.is_object() || x.is_array()) continue;
    s += (s.empty() ? "" : ", ") + it.key() + " " + (x.is_string() ? x.get<std::string>() : x.dump());
  }
  return s;
}

}  // namespace

std::string dateOf(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return rfc3339(v.get<long long>()).substr(0, 10);
  if (!v.is_string()) return "-";
  std::string s = v.get<std::string>();
  auto digits = [&](size_t from, size_t n) {
    for (size_t i = from; i < from + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  if (s.size() >= 10 && digits(0, 4) && s[4] == '-' && digits(5, 2) && s[7] == '-' && digits(8, 2))
    return s.substr(0, 10);
  return s.empty() ? "-" : s;
}

std::string timeOf(const json& v) {
  if (v.is_number_integer() || v.is_number_unsigned()) return rfc3339(v.get<long long>());
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  return "-";
}

std::string fileName(const std::string& url) {
  std::string_view s = url;
  s = s.substr(0, s.find_first_of("?#"));
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  size_t slash = s.rfind('/');
  return std::string(slash == std::string_view::npos ? s : s.substr(slash + 1));
}

std::string productsText(const json& answer) {
  std::string out = "catalog " + orDash(str(answer, "catalog_url")) + ", loaded " + timeOf(field(answer, "loaded_at"));
  if (!str(answer, "cache_status").empty()) out += " (" + str(answer, "cache_status") + ")";
  const json& products = array(answer, "products");
  auto matched = count(answer, "matched");
  out += ": " + plural(matched ? *matched : products.size(), "product matches", "products match");
  if (matched && *matched > products.size()) out += ", " + std::to_string(products.size()) + " shown (--limit)";
  out += "\n";
  if (products.empty()) return out;
  Table t({{"ID"}, {"KIND"}, {"TITLE"}, {"VERSION"}, {"BUILD"}, {"POSTED"}, {"SIZE", true}, {"HELD", true},
           {"MIRROR"}});
  for (const auto& p : products)
    t.add({orDash(str(p, "id")), orDash(str(p, "kind")), orDash(str(p, "title")), orDash(str(p, "version")),
           orDash(str(p, "build")), dateOf(field(p, "post_date")), bytesText(p, "size"), percentText(p, "held_percent"),
           orDash(str(p, "mirror"))});
  return out + t.text();
}

std::string productText(const json& p) {
  std::string out = orDash(str(p, "id")) + "  " + orDash(str(p, "title")) + "\n";
  auto line = [&](const char* label, const std::string& value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "  %-9s ", label);
    out += buf + value + "\n";
  };
  line("kind", orDash(str(p, "kind")));
  std::string version = orDash(str(p, "version"));
  if (!str(p, "build").empty()) version += " (" + str(p, "build") + ")";
  line("version", version);
  line("posted", timeOf(field(p, "post_date")));
  line("size", bytesText(p, "size"));
  line("held", percentText(p, "held_percent"));
  line("mirror", str(p, "mirror").empty() ? "not mirrored" : str(p, "mirror"));
  const json& packages = array(p, "packages");
  line("packages", std::to_string(packages.size()));
  if (packages.empty()) return out;
  Table t({{"STATE"}, {"PERCENT", true}, {"HELD", true}, {"SIZE", true}, {"INTEGRITY"}, {"URL"}});
  for (const auto& pkg : packages) {
    const json& held = field(pkg, "held");
    t.add({orDash(str(held, "state")), percentText(held, "percent"), bytesText(held, "bytes"), bytesText(pkg, "size"),
           str(pkg, "integrity_url").empty() ? "-" : fileName(str(pkg, "integrity_url")), orDash(str(pkg, "url"))});
  }
  return out + t.text();
}

std::string mirrorsText(const json& answer) {
  std::string out = flag(answer, "window_open")
                        ? "mirror window: open\n"
                        : "mirror window: closed (jobs wait until apple.mirror_window opens)\n";
  const json& jobs = array(answer, "mirrors");
  if (jobs.empty()) return out + "no mirror jobs\n";
  Table t({{"ID"}, {"STATE"}, {"PERCENT", true}, {"HELD", true}, {"RATE", true}, {"ETA", true}, {"REASON"}});
  for (const auto& j : jobs)
    t.add({orDash(str(j, "id")), orDash(str(j, "state")), percentText(j, "percent"), percentText(j, "held_percent"),
           rateText(j), etaText(j), orDash(str(j, "reason"))});
  return out + t.text();
}

std::string jobText(const json& job) {
  std::string out = "mirror job " + orDash(str(job, "id")) + ": " + orDash(str(job, "state"));
  if (flag(job, "already_queued")) out += " (already queued)";
  out += ", " + plural(array(job, "items").size(), "file", "files");
  out += ", " + bytesText(job, "total_bytes") + ", held " + percentText(job, "held_percent") + "\n";
  if (!str(job, "note").empty()) out += "note: " + str(job, "note") + "\n";
  return out;
}

std::string jobFailureText(const json& job) {
  std::string reason = str(job, "reason");
  std::string state = str(job, "state");
  std::string out = "mirror job " + orDash(str(job, "id")) + " " +
                    (state == "failed" ? std::string("failed") : "ended in state " + orDash(state)) + ": " +
                    (reason.empty() ? "no reason given" : reason) + "\n";
  for (const auto& item : array(job, "items")) {
    if (str(item, "state") != "failed") continue;
    out += "  failed " + orDash(str(item, "url"));
    if (!str(item, "reason").empty()) out += ": " + str(item, "reason");
    if (auto v = count(item, "verify_failures"); v && *v > 0)
      out += " (" + plural(*v, "verify failure", "verify failures") + ")";
    out += "\n";
  }
  return out;
}

std::string jobWaitingText(const json& job) {
  std::string reason = str(job, "reason");
  return "mirror job " + orDash(str(job, "id")) + " is waiting: " +
         (reason.empty() ? "outside apple.mirror_window" : reason) +
         "\nit starts by itself when the window opens; follow it with `orchardctl apple mirrors`, or wait here "
         "with --wait-window\n";
}

std::string osVersionsText(const json& answer) {
  std::string out;
  const json& releases = array(answer, "releases");
  if (releases.empty()) {
    out = "no OS releases\n";
  } else {
    Table t({{"SET"}, {"PLATFORM"}, {"VERSION"}, {"BUILD"}, {"POSTED"}, {"EXPIRES"}, {"DEVICES", true}});
    for (const auto& r : releases)
      t.add({orDash(str(r, "set")), orDash(str(r, "platform")), orDash(str(r, "version")), orDash(str(r, "build")),
             dateOf(field(r, "posting_date")), dateOf(field(r, "expiration_date")),
             std::to_string(array(r, "supported_devices").size())});
    out = t.text();
  }
  out += "source " + orDash(str(answer, "source")) + ", fetched " + timeOf(field(answer, "fetched_at"));
  out += flag(answer, "stale") ? ", stale" : ", fresh";
  const json& last = field(answer, "last_attempt");
  if (last.is_object() && field(last, "ok").is_boolean() && !flag(last, "ok")) {
    out += "; last attempt " + timeOf(field(last, "time")) + " failed";
    if (!str(last, "error").empty()) out += ": " + str(last, "error");
  }
  return out + "\n";
}

std::string prewarmListText(const json& answer) {
  const json& lists = array(answer, "prewarm");
  if (lists.empty()) return "no prewarm lists\n";
  Table t({{"NAME"}, {"URLS", true}, {"PRODUCTS", true}, {"WINDOW"}, {"INTERVAL", true}, {"STATE"},
           {"COVERAGE", true}, {"UPDATED"}});
  for (const auto& l : lists)
    t.add({orDash(str(l, "name")), std::to_string(array(l, "urls").size()), std::to_string(array(l, "products").size()),
           orDash(str(l, "window")), intervalText(l, "interval"), orDash(str(l, "state")),
           percentText(l, "coverage_percent"), timeOf(field(l, "updated_at"))});
  return t.text();
}

std::string prewarmText(const json& l) {
  std::string out = "prewarm " + orDash(str(l, "name")) + "\n";
  auto line = [&](const char* label, const std::string& value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "  %-9s ", label);
    out += buf + value + "\n";
  };
  line("window", str(l, "window").empty() ? "any time" : str(l, "window"));
  line("interval", intervalText(l, "interval"));
  line("updated", timeOf(field(l, "updated_at")));
  if (!str(l, "state").empty())
    line("state", str(l, "state") + (str(l, "reason").empty() ? "" : " (" + str(l, "reason") + ")"));
  else if (!str(l, "reason").empty())
    line("reason", str(l, "reason"));
  if (count(l, "coverage_percent")) line("coverage", percentText(l, "coverage_percent"));
  if (std::string last = summary(field(l, "last_run")); !last.empty()) line("last run", last);
  for (const char* key : {"urls", "products"}) {
    const json& list = array(l, key);
    line(key, "(" + std::to_string(list.size()) + ")");
    for (const auto& v : list) out += "    " + (v.is_string() ? v.get<std::string>() : v.dump()) + "\n";
  }
  const json& items = array(l, "items");
  if (items.empty()) return out;
  Table t({{"STATE"}, {"HELD", true}, {"SIZE", true}, {"URL"}, {"REASON"}});
  for (const auto& it : items) {
    if (it.is_string()) {
      t.add({"-", "-", "-", it.get<std::string>(), "-"});
      continue;
    }
    const json& held = field(it, "held");
    std::string state = str(it, "state").empty() ? str(held, "state") : str(it, "state");
    std::string url = str(it, "url").empty() ? str(it, "product") : str(it, "url");
    t.add({orDash(state), percentText(held.is_object() ? held : it, "percent"), bytesText(it, "size"), orDash(url),
           orDash(str(it, "reason"))});
  }
  return out + t.text();
}

JobProgress jobProgress(const json& job) {
  JobProgress p;
  p.done = count(job, "done_bytes").value_or(0);
  p.total = count(job, "total_bytes").value_or(0);
  if (auto pc = count(job, "percent")) p.reported.percent = static_cast<int>(*pc > 100 ? 100 : *pc);
  else if (p.total == 0) p.reported.percent = 0;  // nothing known yet is not "100%"
  if (auto r = count(job, "rate")) p.reported.rate = *r;
  if (auto e = count(job, "eta_seconds")) p.reported.etaSeconds = static_cast<int64_t>(*e);
  if (const json& current = field(job, "current"); current.is_string())
    p.reported.note = fileName(current.get<std::string>());
  return p;
}

MirrorNext mirrorNext(const json& job, bool waitWindow) {
  const std::string state = str(job, "state");
  if (state == "done") return MirrorNext::Done;
  if (state == "queued" || state == "running") return MirrorNext::Poll;
  if (state == "waiting") return waitWindow ? MirrorNext::Poll : MirrorNext::Waiting;
  return MirrorNext::Failed;  // "failed", or a state that would otherwise be followed for ever
}

const char* mirrorNextName(MirrorNext next) {
  switch (next) {
    case MirrorNext::Poll: return "poll";
    case MirrorNext::Done: return "done";
    case MirrorNext::Failed: return "failed";
    case MirrorNext::Waiting: return "waiting";
  }
  return "?";
}

std::optional<int64_t> parseInterval(const std::string& text, std::string* why) {
  auto ms = config::parseDuration(text);
  if (!ms) {
    *why = std::string(ms.error().context) + ", got \"" + text + "\"";
    return std::nullopt;
  }
  if (*ms <= 0 || *ms % 1000 != 0) {
    *why = "the interval is whole seconds above zero (\"6h\", \"90m\", \"3600\"), got \"" + text + "\"";
    return std::nullopt;
  }
  return *ms / 1000;
}

bool validWindow(const std::string& text) { return TimeWindow::parse(text).has_value(); }

bool validSha256(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace orchard::ctl
