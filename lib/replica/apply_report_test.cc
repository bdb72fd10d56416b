// Rejections counted into an ApplyReport stay bounded: a count per reason
// class and at most kRejectionExamplesMax example lines, the first of every
// class among them.

#include "lib/replica/apply_report.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "crdt/dot.h"
#include "transport/batch.h"

namespace edgesync::internal {
namespace {

std::string ClassOf(const std::string& line) {
  const size_t start = line.find(": ") + 2;
  return line.substr(start, line.find(": ", start) - start);
}

TEST(ApplyReportTest, ClassesFollowTheStatus) {
  EXPECT_EQ(RejectionReason(absl::InvalidArgumentError("x")), "malformed");
  EXPECT_EQ(RejectionReason(transport::NonCanonicalEnvelopeError()), "not_canonical");
  EXPECT_EQ(RejectionReason(transport::BadSignatureError(crdt::AuthorKey())), "bad_signature");
  EXPECT_EQ(RejectionReason(absl::UnauthenticatedError("batch author ... is not trusted")),
            "untrusted_author");
  EXPECT_EQ(RejectionReason(absl::UnimplementedError("x")), "unsupported_format");
  EXPECT_EQ(RejectionReason(absl::FailedPreconditionError("x")), "replica_failed");
  EXPECT_EQ(RejectionReason(absl::DataLossError("x")), "store_error");
  EXPECT_EQ(RejectionReason(absl::ResourceExhaustedError("x")), "store_error");
  // A tag on the wrong code does not count.
  absl::Status odd = absl::UnauthenticatedError("x");
  odd.SetPayload(transport::kBatchRejectionPayload, absl::Cord("not_canonical"));
  EXPECT_EQ(RejectionReason(odd), "untrusted_author");
}

TEST(ApplyReportTest, ManyRejectionsStayBounded) {
  ApplyReport report;
  for (uint64_t i = 1; i <= 1000000; ++i) {
    AddRejection(report, i, absl::InvalidArgumentError(absl::StrCat("bad ", i)));
  }
  EXPECT_EQ(report.rejected, 1000000u);
  EXPECT_EQ(report.first_rejection, absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(report.rejected_by_reason, (std::map<std::string, uint64_t>{{"malformed", 1000000}}));
  ASSERT_EQ(report.reasons.size(), kRejectionExamplesMax);
  for (size_t i = 0; i < kRejectionExamplesMax; ++i) {
    EXPECT_EQ(report.reasons[i], absl::StrCat("batch ", i + 1, ": malformed: bad ", i + 1));
  }
}

TEST(ApplyReportTest, EveryClassKeepsItsFirstExample) {
  const absl::Status late[] = {
      transport::NonCanonicalEnvelopeError(), transport::BadSignatureError(crdt::AuthorKey()),
      absl::UnauthenticatedError("not trusted"), absl::UnimplementedError("newer"),
      absl::FailedPreconditionError("failed earlier"), absl::DataLossError("damaged")};
  ApplyReport report;
  uint64_t n = 0;
  for (int i = 0; i < 20; ++i) AddRejection(report, ++n, absl::InvalidArgumentError("junk"));
  for (const absl::Status& s : late) {
    for (int i = 0; i < 3; ++i) AddRejection(report, ++n, s);  // repeats add no examples
  }
  EXPECT_EQ(report.rejected, n);
  EXPECT_EQ(report.first_rejection, absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(report.reasons.size(), kRejectionExamplesMax);
  std::set<std::string> classes;
  for (const std::string& line : report.reasons) classes.insert(ClassOf(line));
  EXPECT_EQ(classes.size(), 7u);
  EXPECT_EQ(report.rejected_by_reason.size(), 7u);
  EXPECT_EQ(report.rejected_by_reason.at("malformed"), 20u);
  EXPECT_EQ(report.rejected_by_reason.at("store_error"), 3u);
  // In batch order: the two earliest junk lines, then each class's first.
  EXPECT_EQ(report.reasons[0], "batch 1: malformed: junk");
  EXPECT_EQ(report.reasons[1], "batch 2: malformed: junk");
  EXPECT_EQ(report.reasons[2],
            "batch 21: not_canonical: batch envelope is not in canonical form");
  EXPECT_EQ(report.reasons[7], "batch 36: store_error: damaged");
}

}  // namespace
}  // namespace edgesync::internal
