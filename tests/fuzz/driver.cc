// Standalone fuzz driver: runs a target's LLVMFuzzerTestOneInput over its
// seed corpus and then over random mutations of it, for builds without
// libFuzzer (GCC has no -fsanitize=fuzzer). Linked into every fuzz_<target>
// executable unless ORCHARD_LIBFUZZER is ON, in which case libFuzzer's own
// main takes its place and the same command lines mostly still work.
//
// Usage (libFuzzer-style flags, so CI scripts need not care which engine):
//   fuzz_<target> [flags] PATH...
//     PATH                directory: every regular file in it is a seed
//                         (sorted by name); file: a seed. When every PATH is
//                         a file and -runs is not given, the files are run
//                         once each and nothing is mutated (reproducing a
//                         crash: `fuzz_range crash-range-1234abcd`).
//     -runs=N             mutated inputs to run after the seeds (default
//                         unbounded: the time budget ends the run)
//     -max_total_time=S   time budget in seconds for the whole run
//                         (default 10; seeds always all run)
//     -seed=N             mutation RNG seed (default 1: runs are repeatable)
//     -max_len=N          longest mutated input (default 4096)
//     -dict=FILE          libFuzzer/AFL dictionary: lines `name="token"`
//                         or `"token"`, with \xNN, \\ and \" escapes
//     -timeout=S          one input taking longer is a failure (default 25)
//     -artifact_prefix=P  where a failing input is written (default ./)
//   Environment variables FUZZ_RUNS, FUZZ_MAX_TIME, FUZZ_SEED override the
//   flags (so `FUZZ_MAX_TIME=600 ctest -L fuzz` soaks without editing CMake).
//
// On a crash, sanitizer report, failed FUZZ_CHECK (abort) or timeout, the
// current input is written to <artifact_prefix>crash-<target>-<fnv64> and
// printed (escaped, truncated) to stderr before the process dies. Exit 0
// when every input ran; 1 on usage errors (missing corpus, no inputs).
//
// Mutations (no coverage feedback, so breadth comes from the seeds and the
// dictionary): bit flips, random bytes, byte inserts and deletes, chunk
// copies and repeats (to reach size limits), splices with another seed,
// interesting binary integers, interesting decimal numbers in place of a
// digit run, dictionary tokens, case flips. Each mutated input stacks 1-8
// of them on a random seed.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) __attribute__((weak));
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

// UBSan (a runtime of its own beside ASan's, with its own copy of the
// death callbacks) would exit without calling ours: make it abort instead,
// so the SIGABRT handler saves the input. Read by the runtime at start-up;
// UBSAN_OPTIONS still overrides it.
extern "C" const char* __ubsan_default_options() { return "abort_on_error=1:print_stacktrace=1"; }

namespace {

// ---- the input being run, for the crash handlers ----

const uint8_t* gCurrent = nullptr;
size_t gCurrentSize = 0;
char gCrashPath[4096];      // precomputed per input: handlers must not allocate
char gTargetName[256] = "target";
std::string gArtifactPrefix = "./";
volatile sig_atomic_t gDumped = 0;

uint64_t fnv64(const uint8_t* d, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ d[i]) * 0x100000001b3ull;
  return h;
}

void writeAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w <= 0) return;
    c += w;
    n -= static_cast<size_t>(w);
  }
}

void writeStr(int fd, const char* s) { writeAll(fd, s, std::strlen(s)); }

// Async-signal-safe: open/write/close only, no allocation.
void dumpCurrentInput() {
  if (gDumped || gCurrent == nullptr) return;
  gDumped = 1;
  int fd = ::open(gCrashPath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    writeAll(fd, gCurrent, gCurrentSize);
    ::close(fd);
  }
  writeStr(2, "\n==fuzz== failing input written to ");
  writeStr(2, gCrashPath);
  writeStr(2, "\n==fuzz== input (escaped, first 1024 bytes): \"");
  char buf[8];
  for (size_t i = 0; i < gCurrentSize && i < 1024; ++i) {
    unsigned char c = gCurrent[i];
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      buf[0] = static_cast<char>(c);
      writeAll(2, buf, 1);
    } else {
      static const char kHex[] = "0123456789abcdef";
      buf[0] = '\\';
      buf[1] = 'x';
      buf[2] = kHex[c >> 4];
      buf[3] = kHex[c & 15];
      writeAll(2, buf, 4);
    }
  }
  writeStr(2, gCurrentSize > 1024 ? "\"...\n" : "\"\n");
}

void onFatalSignal(int sig) {
  if (sig == SIGALRM) writeStr(2, "\n==fuzz== timeout: one input ran longer than -timeout\n");
  dumpCurrentInput();
  ::signal(sig == SIGALRM ? SIGABRT : sig, SIG_DFL);
  if (sig == SIGALRM) ::abort();
  ::raise(sig);
}

void installHandlers() {
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM}) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = onFatalSignal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // onFatalSignal resets the disposition itself
    // ASan installs its own SEGV handler (and reports through the death
    // callback); do not take SEGV/BUS/FPE from it.
    if (__sanitizer_set_death_callback && (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE)) continue;
    ::sigaction(sig, &sa, nullptr);
  }
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(dumpCurrentInput);
}

// ---- random numbers: splitmix64, deterministic per -seed ----

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x1234567) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
  bool oneIn(size_t n) { return below(n) == 0; }

 private:
  uint64_t s_;
};

// ---- dictionary ----

// Tokens useful to every target here (HTTP heads, header values, dates,
// TOML); a -dict file adds the target's own.
const char* const kBuiltinTokens[] = {
    "\r\n", "\r\n\r\n", "\n", ": ", ":", ",", ";", "=", "\"", "'", "-", "/", "?", "&", "#", "%", "%00", "[", "]",
    "*", " ", "\t", "\\", "W/", "GMT", "HTTP/1.1", "HTTP/1.0", "GET ", "HEAD ", "POST ", "bytes=", "max-age=",
    "Host: ", "Content-Length: ", "Transfer-Encoding: chunked", "0\r\n\r\n", "true", "false", "[server]", "0x",
};

std::string unescapeToken(const std::string& s, bool* ok) {
  std::string out;
  *ok = true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 1 >= s.size()) {
      *ok = false;
      return out;
    }
    char c = s[++i];
    if (c == '\\' || c == '"') out += c;
    else if (c == 'n') out += '\n';
    else if (c == 'r') out += '\r';
    else if (c == 't') out += '\t';
    else if (c == 'x' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
             std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      *ok = false;
      return out;
    }
  }
  return out;
}

bool loadDict(const std::string& path, std::vector<std::string>* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    ++lineNo;
    size_t a = line.find_first_not_of(" \t");
    if (a == std::string::npos || line[a] == '#') continue;
    size_t q1 = line.find('"');
    size_t q2 = line.rfind('"');
    if (q1 == std::string::npos || q2 <= q1) {
      std::fprintf(stderr, "%s:%d: not a dictionary entry\n", path.c_str(), lineNo);
      return false;
    }
    bool ok;
    std::string tok = unescapeToken(line.substr(q1 + 1, q2 - q1 - 1), &ok);
    if (!ok) {
      std::fprintf(stderr, "%s:%d: bad escape\n", path.c_str(), lineNo);
      return false;
    }
    if (!tok.empty()) out->push_back(tok);
  }
  return true;
}

// ---- mutations ----

const uint64_t kInterestingInts[] = {0,          1,          0x7f,       0x80,       0xff,       0x100,
                                     0x7fff,     0x8000,     0xffff,     0x10000,    0x7fffffff, 0x80000000,
                                     0xffffffff, 0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull,
                                     0xffffffffffffffffull};
const char* const kInterestingDecimals[] = {"0",           "1",          "-1",         "00",
                                            "255",         "256",        "65535",      "65536",
                                            "2147483647",  "2147483648", "4294967295", "4294967296",
                                            "9223372036854775807", "9223372036854775808",
                                            "18446744073709551615", "18446744073709551616",
                                            "99999999999999999999999", "1e9", "0x10", "+1", " 1"};

class Mutator {
 public:
  Mutator(Rng* rng, const std::vector<std::string>* corpus, const std::vector<std::string>* dict, size_t maxLen)
      : rng_(*rng), corpus_(*corpus), dict_(*dict), maxLen_(maxLen) {}

  std::string mutate() {
    std::string s = corpus_[rng_.below(corpus_.size())];
    size_t n = 1 + rng_.below(rng_.oneIn(4) ? 8 : 3);
    for (size_t i = 0; i < n; ++i) once(&s);
    if (s.size() > maxLen_) s.resize(maxLen_);
    return s;
  }

 private:
  size_t pos(const std::string& s) { return rng_.below(s.size() + 1); }  // insertion point
  size_t at(const std::string& s) { return rng_.below(s.size()); }       // existing byte (s non-empty)

  std::string token() {
    size_t builtin = sizeof kBuiltinTokens / sizeof kBuiltinTokens[0];
    // Target dictionary entries are worth more than the generic ones.
    if (!dict_.empty() && !rng_.oneIn(4)) return dict_[rng_.below(dict_.size())];
    return kBuiltinTokens[rng_.below(builtin)];
  }

  void once(std::string* sp) {
    std::string& s = *sp;
    switch (rng_.below(13)) {
      case 0:  // flip a bit
        if (!s.empty()) s[at(s)] ^= static_cast<char>(1u << rng_.below(8));
        break;
      case 1:  // random byte
        if (!s.empty()) s[at(s)] = static_cast<char>(rng_.next());
        break;
      case 2: {  // insert 1-4 random bytes
        size_t k = 1 + rng_.below(4);
        std::string ins;
        for (size_t i = 0; i < k; ++i) ins += static_cast<char>(rng_.next());
        s.insert(pos(s), ins);
        break;
      }
      case 3: {  // delete a range
        if (s.empty()) break;
        size_t p = at(s);
        size_t k = 1 + rng_.below(std::min<size_t>(s.size() - p, rng_.oneIn(4) ? 256 : 8));
        s.erase(p, k);
        break;
      }
      case 4: {  // copy a chunk elsewhere
        if (s.empty()) break;
        size_t p = at(s);
        size_t k = 1 + rng_.below(std::min<size_t>(s.size() - p, 64));
        std::string chunk = s.substr(p, k);
        s.insert(pos(s), chunk);
        break;
      }
      case 5: {  // repeat a chunk many times (size limits, many fields)
        if (s.empty()) break;
        size_t p = at(s);
        size_t k = 1 + rng_.below(std::min<size_t>(s.size() - p, 48));
        size_t times = size_t{1} << rng_.below(rng_.oneIn(8) ? 13 : 6);
        std::string chunk = s.substr(p, k), rep;
        for (size_t i = 0; i < times && rep.size() + k <= maxLen_; ++i) rep += chunk;
        s.insert(p, rep);
        break;
      }
      case 6: {  // splice with another corpus entry
        const std::string& o = corpus_[rng_.below(corpus_.size())];
        if (rng_.oneIn(2)) {
          s = s.substr(0, pos(s)) + o.substr(rng_.below(o.size() + 1));
        } else if (!o.empty()) {
          size_t p = rng_.below(o.size());
          size_t k = 1 + rng_.below(std::min<size_t>(o.size() - p, 128));
          s.insert(pos(s), o.substr(p, k));
        }
        break;
      }
      case 7: {  // interesting binary integer, overwrite or insert
        uint64_t v = kInterestingInts[rng_.below(sizeof kInterestingInts / sizeof kInterestingInts[0])];
        if (rng_.oneIn(2)) v = ~v + (rng_.oneIn(2) ? 1 : 0);
        size_t width = size_t{1} << rng_.below(4);
        std::string b;
        for (size_t i = 0; i < width; ++i) b += static_cast<char>(v >> (8 * i));
        if (rng_.oneIn(2)) std::reverse(b.begin(), b.end());
        if (rng_.oneIn(2) || s.size() < width) s.insert(pos(s), b);
        else s.replace(rng_.below(s.size() - width + 1), width, b);
        break;
      }
      case 8: {  // interesting decimal in place of a digit run (or inserted)
        const char* d = kInterestingDecimals[rng_.below(sizeof kInterestingDecimals / sizeof kInterestingDecimals[0])];
        std::vector<std::pair<size_t, size_t>> runs;
        for (size_t i = 0; i < s.size();) {
          if (s[i] >= '0' && s[i] <= '9') {
            size_t j = i;
            while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j;
            runs.emplace_back(i, j - i);
            i = j;
          } else {
            ++i;
          }
        }
        if (runs.empty() || rng_.oneIn(4)) s.insert(pos(s), d);
        else {
          auto [p, k] = runs[rng_.below(runs.size())];
          s.replace(p, k, d);
        }
        break;
      }
      case 9:
      case 10: {  // dictionary token: insert or overwrite
        std::string t = token();
        if (rng_.oneIn(2) || s.size() < t.size()) s.insert(pos(s), t);
        else s.replace(rng_.below(s.size() - t.size() + 1), t.size(), t);
        break;
      }
      case 11: {  // flip the case of a run of letters
        if (s.empty()) break;
        size_t p = at(s);
        for (size_t i = p; i < s.size() && i < p + 8; ++i)
          if (std::isalpha(static_cast<unsigned char>(s[i]))) s[i] ^= 0x20;
        break;
      }
      case 12: {  // swap two bytes
        if (s.size() < 2) break;
        std::swap(s[at(s)], s[at(s)]);
        break;
      }
    }
  }

  Rng& rng_;
  const std::vector<std::string>& corpus_;
  const std::vector<std::string>& dict_;
  size_t maxLen_;
};

// ---- running ----

bool readFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string baseName(const char* argv0) {
  std::string s(argv0);
  auto slash = s.rfind('/');
  if (slash != std::string::npos) s = s.substr(slash + 1);
  if (s.rfind("fuzz_", 0) == 0) s = s.substr(5);
  return s;
}

void runOne(const std::string& input, unsigned timeoutSec) {
  const auto* data = reinterpret_cast<const uint8_t*>(input.data());
  std::snprintf(gCrashPath, sizeof gCrashPath, "%scrash-%s-%016llx", gArtifactPrefix.c_str(), gTargetName,
                static_cast<unsigned long long>(fnv64(data, input.size())));
  gCurrent = data;
  gCurrentSize = input.size();
  if (timeoutSec > 0) ::alarm(timeoutSec);
  // A copy of exactly `size` bytes, as libFuzzer does, so ASan sees reads
  // one past the end.
  std::unique_ptr<uint8_t[]> copy(new uint8_t[input.size() ? input.size() : 1]);
  std::memcpy(copy.get(), data, input.size());
  LLVMFuzzerTestOneInput(copy.get(), input.size());
  if (timeoutSec > 0) ::alarm(0);
  gCurrent = nullptr;
  gCurrentSize = 0;
}

bool flagValue(const char* arg, const char* name, std::string* out) {
  size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) == 0 && arg[n] == '=') {
    *out = arg + n + 1;
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::snprintf(gTargetName, sizeof gTargetName, "%s", baseName(argv[0]).c_str());
  uint64_t runs = UINT64_MAX;
  bool runsGiven = false;
  double maxTime = 10;
  uint64_t seed = 1;
  size_t maxLen = 4096;
  unsigned timeoutSec = 25;
  std::vector<std::string> dictPaths, paths;

  for (int i = 1; i < argc; ++i) {
    std::string v;
    const char* a = argv[i];
    if (a[0] == '-' && a[1] == '-') ++a;  // accept --flag=v too
    if (flagValue(a, "-runs", &v)) runs = std::strtoull(v.c_str(), nullptr, 10), runsGiven = true;
    else if (flagValue(a, "-max_total_time", &v)) maxTime = std::strtod(v.c_str(), nullptr);
    else if (flagValue(a, "-seed", &v)) seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (flagValue(a, "-max_len", &v)) maxLen = std::strtoull(v.c_str(), nullptr, 10);
    else if (flagValue(a, "-dict", &v)) dictPaths.push_back(v);
    else if (flagValue(a, "-timeout", &v)) timeoutSec = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (flagValue(a, "-artifact_prefix", &v)) gArtifactPrefix = v;
    else if (a[0] == '-') {
      std::fprintf(stderr, "unknown flag %s (see tests/fuzz/driver.cc)\n", argv[i]);
      return 1;
    } else {
      paths.push_back(argv[i]);
    }
  }
  if (const char* e = std::getenv("FUZZ_RUNS")) runs = std::strtoull(e, nullptr, 10), runsGiven = true;
  if (const char* e = std::getenv("FUZZ_MAX_TIME")) maxTime = std::strtod(e, nullptr);
  if (const char* e = std::getenv("FUZZ_SEED")) seed = std::strtoull(e, nullptr, 10);

  // Seeds: files of each directory in name order, then files named directly.
  std::vector<std::string> corpus;
  bool allFiles = !paths.empty();
  for (const auto& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
      std::fprintf(stderr, "fuzz %s: cannot read %s\n", gTargetName, p.c_str());
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      allFiles = false;
      std::vector<std::string> names;
      if (DIR* d = ::opendir(p.c_str())) {
        while (dirent* e = ::readdir(d)) {
          std::string full = p + "/" + e->d_name;
          struct stat fs;
          if (e->d_name[0] != '.' && ::stat(full.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) names.push_back(full);
        }
        ::closedir(d);
      }
      std::sort(names.begin(), names.end());
      for (const auto& n : names) {
        std::string s;
        if (readFile(n, &s)) corpus.push_back(std::move(s));
      }
    } else {
      std::string s;
      if (!readFile(p, &s)) {
        std::fprintf(stderr, "fuzz %s: cannot read %s\n", gTargetName, p.c_str());
        return 1;
      }
      corpus.push_back(std::move(s));
    }
  }
  if (allFiles && !runsGiven) runs = 0;  // reproducing: just these inputs
  if (corpus.empty()) corpus.emplace_back();  // the empty input is always a seed
  std::vector<std::string> dict;
  for (const auto& d : dictPaths) {
    if (!loadDict(d, &dict)) {
      std::fprintf(stderr, "fuzz %s: cannot load dictionary %s\n", gTargetName, d.c_str());
      return 1;
    }
  }

  installHandlers();
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  uint64_t seedsRun = 0, mutationsRun = 0;
  double slowest = 0;
  std::string slowestInput;
  auto timed = [&](const std::string& input) {
    auto t0 = std::chrono::steady_clock::now();
    runOne(input, timeoutSec);
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (t > slowest) {
      slowest = t;
      slowestInput = input;
    }
  };
  for (const auto& s : corpus) {
    timed(s);
    ++seedsRun;
  }
  Rng rng(seed);
  Mutator mutator(&rng, &corpus, &dict, maxLen);
  while (mutationsRun < runs && elapsed() < maxTime) {
    timed(mutator.mutate());
    ++mutationsRun;
  }
  std::printf("fuzz %s: %llu inputs (%llu seeds + %llu mutations) in %.1f s, seed %llu, max_len %zu, %zu dict tokens;"
              " slowest input %.0f ms (%zu bytes)\n",
              gTargetName, static_cast<unsigned long long>(seedsRun + mutationsRun),
              static_cast<unsigned long long>(seedsRun), static_cast<unsigned long long>(mutationsRun), elapsed(),
              static_cast<unsigned long long>(seed), maxLen, dict.size(), slowest * 1000, slowestInput.size());
  if (std::getenv("FUZZ_VERBOSE") && !slowestInput.empty()) {
    std::string shown;
    for (size_t i = 0; i < slowestInput.size() && i < 400; ++i) {
      unsigned char c = static_cast<unsigned char>(slowestInput[i]);
      char b[5];
      std::snprintf(b, sizeof b, c >= 0x20 && c < 0x7f && c != '\\' ? "%c" : "\\x%02x", c);
      shown += b;
    }
    std::printf("  slowest input: \"%s\"%s\n", shown.c_str(), slowestInput.size() > 400 ? "..." : "");
  }
  std::fflush(stdout);
  return 0;
}
