// Flat-package fixtures for the catalog tests, written at run time by
// tests/tools/xarpkg.py into a per-process temp dir (never checked in).
// The test CAs are made on first use: key generation is the slow part.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>

namespace orchard::catalog::testing {

class XarFixtures {
 public:
  static XarFixtures& get() {
    static XarFixtures f;
    return f;
  }
  ~XarFixtures() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
    return path(name);
  }
  static std::string slurp(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Makes <prefix>-root.pem, -inter.pem, -leaf.pem, -leaf.key once.
  std::string ca(const std::string& prefix) {
    if (!cas_.count(prefix)) {
      run("ca " + dir_ + " --prefix " + prefix);
      cas_.insert(prefix);
    }
    return path(prefix);
  }

  // Runs `xarpkg.py build <out> <args>` and returns the archive's path.
  std::string build(const std::string& out, const std::string& args) {
    run("build " + path(out) + " " + args);
    return path(out);
  }

  static void run(const std::string& args) {
    std::string cmd = "python3 " ORCHARD_SOURCE_DIR "/tests/tools/xarpkg.py " + args;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

 private:
  XarFixtures() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "orchard-xar-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data()) ? tmpl : std::string("/tmp");
  }
  std::string dir_;
  std::set<std::string> cas_;
};

inline const char* kSimpleDistribution = R"(<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="1">
  <title>Foo</title>
  <pkg-ref id="com.example.foo.pkg" version="1.0" installKBytes="10">#foo.pkg</pkg-ref>
</installer-gui-script>
)";
inline const char* kSimplePackageInfo =
    R"(<pkg-info identifier="com.example.foo.pkg" version="1.0"><bundle id="com.example.foo" path="./Foo.app"/></pkg-info>)";

}  // namespace orchard::catalog::testing
