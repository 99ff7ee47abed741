// Tests for server/metrics.h and the origin error kinds: histogram
// bucketing at and around every bound (Prometheus `le`: an observation
// equal to a bound is in that bucket), the sums a scrape adds up from
// several loops, the label names, and how upstream errors are classified.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>

#include "server/http/upstream.h"
#include "server/net/loop.h"

namespace orchard::server {
namespace {

TEST(Histogram, BucketOfEveryBound) {
  ASSERT_EQ(kBuckets, 17u);
  EXPECT_EQ(bucketOf(0), 0u);
  EXPECT_EQ(bucketOf(1), 0u);
  for (size_t i = 0; i + 1 < kBuckets; ++i) {
    const uint64_t b = kBucketBoundsNs[i];
    EXPECT_EQ(bucketOf(b), i) << "a value equal to its bound belongs to it (le)";
    EXPECT_EQ(bucketOf(b - 1), i) << b;
    EXPECT_EQ(bucketOf(b + 1), i + 1) << b;
  }
  EXPECT_EQ(bucketOf(60'000'000'001ull), kBuckets - 1);
  EXPECT_EQ(bucketOf(UINT64_MAX), kBuckets - 1);
}

TEST(Histogram, BoundsAscendFromHalfAMillisecondToAMinute) {
  EXPECT_EQ(kBucketBoundsNs[0], 500'000u);
  EXPECT_EQ(kBucketBoundsNs[kBuckets - 2], 60'000'000'000u);
  for (size_t i = 1; i + 1 < kBuckets; ++i) EXPECT_LT(kBucketBoundsNs[i - 1], kBucketBoundsNs[i]);
}

TEST(Histogram, RecordAndSumAcrossLoops) {
  Counters a, b;
  a.ttfb[0].record(100'000);        // 0.1 ms -> le 0.0005
  a.ttfb[0].record(500'000);        // exactly 0.5 ms -> le 0.0005
  a.ttfb[0].record(700'000);        // -> le 0.001
  b.ttfb[0].record(3'000'000'000);  // 3 s -> le 5
  b.ttfb[0].record(90'000'000'000); // 90 s -> +Inf
  b.duration.record(42);
  CounterTotals t = sumCounters({&a, &b});
  EXPECT_EQ(t.ttfb[0].counts[0], 2u);
  EXPECT_EQ(t.ttfb[0].counts[1], 1u);
  EXPECT_EQ(t.ttfb[0].counts[12], 1u);  // le 5
  EXPECT_EQ(t.ttfb[0].counts[kBuckets - 1], 1u);
  EXPECT_EQ(t.ttfb[0].count(), 5u);
  EXPECT_EQ(t.ttfb[0].sumNs, 100'000u + 500'000u + 700'000u + 3'000'000'000u + 90'000'000'000u);
  EXPECT_EQ(t.duration.count(), 1u);
  EXPECT_EQ(t.duration.sumNs, 42u);
  for (size_t r = 1; r < kResults; ++r) EXPECT_EQ(t.ttfb[r].count(), 0u);
}

TEST(Counters, ResponsesByResultAndForm) {
  Counters a, b;
  a.addResponse(RequestResult::Hit, RequestForm::Intercept);
  a.addResponse(RequestResult::Hit, RequestForm::Intercept);
  b.addResponse(RequestResult::Hit, RequestForm::Intercept);
  b.addResponse(RequestResult::Tunnel, RequestForm::Forward);
  a.addOriginError(OriginErrorKind::Status5xx);
  CounterTotals t = sumCounters({&a, &b});
  EXPECT_EQ(t.responses[size_t(RequestResult::Hit)][size_t(RequestForm::Intercept)], 3u);
  EXPECT_EQ(t.responses[size_t(RequestResult::Tunnel)][size_t(RequestForm::Forward)], 1u);
  EXPECT_EQ(t.responses[size_t(RequestResult::Hit)][size_t(RequestForm::Forward)], 0u);
  EXPECT_EQ(t.origin_errors_by_kind[size_t(OriginErrorKind::Status5xx)], 1u);
}

TEST(Counters, LabelsAreDistinctPrometheusValues) {
  std::set<std::string> seen;
  for (size_t r = 0; r < kResults; ++r) EXPECT_TRUE(seen.insert(resultLabel(RequestResult(r))).second);
  EXPECT_STREQ(resultLabel(RequestResult::Revalidated), "revalidated");
  seen.clear();
  for (size_t f = 0; f < kForms; ++f) EXPECT_TRUE(seen.insert(formLabel(RequestForm(f))).second);
  EXPECT_STREQ(formLabel(RequestForm::Source), "source");
  seen.clear();
  for (size_t k = 0; k < kOriginErrorKinds; ++k)
    EXPECT_TRUE(seen.insert(originErrorLabel(OriginErrorKind(k))).second);
  EXPECT_STREQ(originErrorLabel(OriginErrorKind::Status5xx), "status_5xx");
}

// The errors upstream.cc and origin_resolve.cc make, by kind.
TEST(OriginErrors, Classified) {
  struct Case {
    Error e;
    OriginErrorKind kind;
  } cases[] = {
      {uvError(UV_ECONNREFUSED, "upstream: connect"), OriginErrorKind::Connect},
      {uvError(UV_EHOSTUNREACH, "upstream: connect"), OriginErrorKind::Connect},
      {uvError(UV_ECONNRESET, "upstream: read"), OriginErrorKind::Reset},
      {uvError(UV_ETIMEDOUT, "upstream: connect"), OriginErrorKind::Timeout},
      {uvError(UV_EAI_NONAME, "upstream: resolve"), OriginErrorKind::Resolve},
      {Error{Errc::Invalid, 0, "origin resolves only to loopback addresses"}, OriginErrorKind::Resolve},
      {Error{Errc::Timeout, 0, "upstream: read timeout"}, OriginErrorKind::Timeout},
      {Error{Errc::Timeout, 0, "upstream: TLS handshake timeout"}, OriginErrorKind::Timeout},
      {Error{Errc::Protocol, 0, "upstream: TLS certificate verify failed: hostname mismatch"}, OriginErrorKind::Tls},
      {Error{Errc::Unsupported, 0, "upstream: no TLS client context (see upstream.ca_file)"}, OriginErrorKind::Tls},
      {Error{Errc::Protocol, 0, "upstream: response head over 64 KiB"}, OriginErrorKind::Protocol},
      {Error{Errc::Protocol, 0, "HPE_INVALID_STATUS"}, OriginErrorKind::Protocol},
      {Error{Errc::Closed, 0, "upstream: closed before answering"}, OriginErrorKind::Reset},
      {Error{Errc::Closed, 0, "upstream: closed mid-body"}, OriginErrorKind::Reset},
      {Error{Errc::NoSpace, 0, "fill: disk full"}, OriginErrorKind::Other},
  };
  for (const auto& c : cases)
    EXPECT_STREQ(originErrorLabel(classifyOriginError(c.e)), originErrorLabel(c.kind)) << c.e.context;
}

}  // namespace
}  // namespace orchard::server
