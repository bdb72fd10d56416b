#include "transport/admission.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace edgesync::transport {
namespace {

Admission Make(const AdmissionOptions& options) {
  absl::StatusOr<Admission> a = Admission::Create(options);
  EXPECT_TRUE(a.ok()) << a.status();
  return *std::move(a);
}

TEST(AdmissionTest, RejectsInvalidOptions) {
  AdmissionOptions o;
  o.handshakes_burst = 0;
  EXPECT_EQ(Admission::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = AdmissionOptions{};
  o.addresses_max = o.connections_max - 1;
  EXPECT_EQ(Admission::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AdmissionTest, RejectsBadAddresses) {
  Admission a = Make({});
  EXPECT_EQ(a.Admit("", 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Admit(std::string(kAdmissionAddressBytesMax + 1, 'x'), 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a.Admit(std::string(kAdmissionAddressBytesMax, 'x'), 0).ok());
}

TEST(AdmissionTest, PerAddressConnectionLimit) {
  AdmissionOptions o;
  o.connections_per_address_max = 3;
  o.handshakes_burst = 100;
  Admission a = Make(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a.Admit("10.0.0.1", 0).ok());
  absl::Status s = a.Admit("10.0.0.1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("open connections"), absl::string_view::npos) << s;
  EXPECT_TRUE(a.Admit("10.0.0.2", 0).ok());  // other addresses unaffected
  a.Release("10.0.0.1");
  EXPECT_TRUE(a.Admit("10.0.0.1", 0).ok());
  EXPECT_EQ(a.connections(), 4u);
}

TEST(AdmissionTest, TotalConnectionLimit) {
  AdmissionOptions o;
  o.connections_max = 5;
  o.addresses_max = 5;
  Admission a = Make(o);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.Admit(absl::StrCat("10.0.0.", i), 0).ok());
  absl::Status s = a.Admit("10.0.1.1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("connection limit"), absl::string_view::npos) << s;
  a.Release("10.0.0.3");
  EXPECT_TRUE(a.Admit("10.0.1.1", 0).ok());
}

TEST(AdmissionTest, TokenBucketBurstThenRate) {
  AdmissionOptions o;
  o.handshakes_per_address_per_minute = 30;  // one per 2000 ms
  o.handshakes_burst = 4;
  Admission a = Make(o);
  const std::string addr = "192.0.2.7";
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(a.Admit(addr, 1000).ok()) << i;
    a.Release(addr);
  }
  absl::Status s = a.Admit(addr, 1000);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("handshakes per minute"), absl::string_view::npos) << s;
  EXPECT_EQ(a.Admit(addr, 2999).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(a.Admit(addr, 3000).ok());  // exactly one token after 2000 ms
  a.Release(addr);
  EXPECT_EQ(a.Admit(addr, 3000).code(), absl::StatusCode::kResourceExhausted);
  // A long pause refills to the burst, not beyond, and does not overflow.
  const uint64_t later = uint64_t{1} << 62;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(a.Admit(addr, later).ok()) << i;
    a.Release(addr);
  }
  EXPECT_EQ(a.Admit(addr, later).code(), absl::StatusCode::kResourceExhausted);
  // Time going backwards adds nothing.
  EXPECT_EQ(a.Admit(addr, 0).code(), absl::StatusCode::kResourceExhausted);
}

TEST(AdmissionTest, TableIsBoundedAndEvictsOldestIdle) {
  AdmissionOptions o;
  o.connections_max = 2;
  o.addresses_max = 3;
  o.handshakes_burst = 1;
  Admission a = Make(o);
  ASSERT_TRUE(a.Admit("busy", 0).ok());  // stays open: never evicted
  ASSERT_TRUE(a.Admit("old", 1).ok());
  a.Release("old");
  ASSERT_TRUE(a.Admit("mid", 2).ok());
  a.Release("mid");
  EXPECT_EQ(a.addresses(), 3u);
  // "old" has no token left; seeing it again makes it the most recent.
  EXPECT_EQ(a.Admit("old", 3).code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(a.Admit("new", 4).ok());  // evicts "mid", the least recently seen idle
  a.Release("new");
  EXPECT_EQ(a.addresses(), 3u);
  // "old" is still remembered (no fresh burst), "mid" was forgotten (fresh burst).
  EXPECT_EQ(a.Admit("old", 5).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(a.Admit("mid", 6).ok());
  a.Release("mid");
  EXPECT_EQ(a.addresses(), 3u);
  for (int i = 0; i < 1000; ++i) {
    const std::string addr = absl::StrCat("10.1.", i / 256, ".", i % 256);
    ASSERT_TRUE(a.Admit(addr, 10 + static_cast<uint64_t>(i)).ok()) << addr;
    a.Release(addr);
    ASSERT_LE(a.addresses(), 3u);
  }
  EXPECT_EQ(a.connections(), 1u);
}

TEST(AdmissionTest, ConnectionLimitComesBeforeTableLimit) {
  AdmissionOptions o;
  o.connections_max = 2;
  o.addresses_max = 2;
  Admission a = Make(o);
  ASSERT_TRUE(a.Admit("a", 0).ok());
  ASSERT_TRUE(a.Admit("b", 0).ok());
  // The connection limit triggers before the table limit.
  EXPECT_EQ(a.Admit("c", 0).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.addresses(), 2u);
}

TEST(AdmissionTest, SurvivesMove) {
  Admission a = Make({});
  ASSERT_TRUE(a.Admit("x", 0).ok());
  a.Release("x");
  Admission b = std::move(a);
  ASSERT_TRUE(b.Admit("y", 0).ok());
  b.Release("y");
  ASSERT_TRUE(b.Admit("x", 0).ok());
  EXPECT_EQ(b.connections(), 1u);
}

TEST(AdmissionDeathTest, ReleaseWithoutAdmitIsABug) {
  Admission a = Make({});
  EXPECT_DEATH(a.Release("nobody"), "open > 0");
}

}  // namespace
}  // namespace edgesync::transport
