// Tests for server/catalog/import.h's pure part: the default filename of an
// import, the URL's last path segment percent-decoded (query and fragment
// left out; "" when there is none, so the route asks for "filename").
#include "server/catalog/import.h"

#include <gtest/gtest.h>

namespace orchard::server {
namespace {

TEST(ImportFilename, LastPathSegmentDecoded) {
  const struct {
    const char* url;
    const char* name;
  } cases[] = {
      {"http://pkgs.example/dist/Tool-1.2.pkg", "Tool-1.2.pkg"},
      {"https://swcdn.apple.com/content/downloads/a/b/InstallAssistant.pkg?x=1", "InstallAssistant.pkg"},
      {"http://h/dir/My%20Tool.dmg#frag", "My Tool.dmg"},
      {"http://h:8080/file.zip", "file.zip"},
      {"http://h/dir/", ""},
      {"http://h", ""},
      {"http://h?a=b/c.pkg", ""},
      {"http://h/bad%zz.pkg", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(urlFilename(c.url), c.name) << c.url;
}

}  // namespace
}  // namespace orchard::server
