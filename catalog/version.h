// Version ordering as Mac admins expect it (what Munki, Jamf and macOS's
// own update checks roughly agree on), for sorting a package's published
// versions and picking the newest.
//
// Rules:
//  1. Build metadata is ignored: from the first '+' that follows a digit
//     run, the rest is dropped ("1.2.3+45" == "1.2.3" by rule, semver).
//  2. A leading 'v' or 'V' directly before a digit is ignored ("v2.1").
//  3. The rest is split into runs of digits and runs of letters (ASCII
//     letters and every byte >= 0x80). Separators ('.', '-', '_', '+', '~',
//     space, and any other ASCII byte that is neither) only end a run.
//  4. Runs are compared pairwise from the left:
//     - digits against digits by numeric value, of any length (leading
//       zeros stripped, then shorter is smaller, then lexicographically:
//       no overflow): 1.10 > 1.9;
//     - letters against letters case-insensitively, after the known
//       pre-release words are given their canonical spelling: a -> alpha,
//       b -> beta, pre -> preview. The canonical words then already sort
//       alpha < beta < preview < rc, and any other word falls where its
//       spelling puts it ("dev" between beta and preview);
//     - letters against digits: the letters are smaller. A letter run
//       after a number marks a pre-release, which sorts before the release
//       and before any later number: 2.0b3 < 2.0 < 2.0.1;
//     - a version that has ended compares as if followed by zeros:
//       1.0 == 1.0.0, 128.0.1 > 128.0; and a missing run is larger than a
//       letter run: 2.0-rc1 < 2.0.
//     So 2.0a1 < 2.0alpha2 < 2.0b1 < 2.0beta2 < 2.0pre1 < 2.0rc1 < 2.0 ==
//     2.0.0 < 2.0.1 < 2.1.
// This order on runs is a total preorder (letters < end == 0 < 1 < ...),
// so comparing run sequences lexicographically is transitive.
#pragma once

#include <string_view>

namespace orchard::catalog {

// <0 when a is older than b, 0 when equal by the rules, >0 when newer.
// Returns only -1, 0 or 1.
int compareVersions(std::string_view a, std::string_view b);

// A strict weak (in fact total) order for sorting: compareVersions, with
// versions equal by rule ordered by their raw bytes, so two distinct
// strings never compare equivalent ("1.0" < "1.0.0", "1.0+b" < "1.0+c").
bool versionLess(std::string_view a, std::string_view b);

}  // namespace orchard::catalog
