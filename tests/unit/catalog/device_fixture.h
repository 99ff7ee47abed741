// A valid device record shared by the device, import and targeting tests:
// every field set, each within its rule (catalog/device.h), so a test
// changes one field and knows any refusal is about that field.
#pragma once

#include "catalog/fleet.h"

namespace orchard::catalog::fixture {

inline Device sampleDevice() {
  Device d;
  d.serial = "C02XK1ZZJGH5";
  d.udid = "00008103-001A2B3C4D5E6F70";
  d.groups = {"finance", "it"};
  d.osVersion = "14.5";
  d.osBuild = "23F79";
  d.model = "Mac14,2";
  d.boardId = "Mac-27AD2F918AE68F61";
  d.arch = "arm64";
  d.site = "paris";
  return d;
}

}  // namespace orchard::catalog::fixture
