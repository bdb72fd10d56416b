#include "lib/replica/apply_report.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "crdt/check.h"
#include "transport/batch.h"

namespace edgesync::internal {

namespace {

constexpr absl::string_view kBatchPrefix = "batch ";

// The class named in an example line "batch <n>: <class>: <why>".
absl::string_view ClassOfExample(absl::string_view line) {
  const size_t start = line.find(": ");
  if (start == absl::string_view::npos) return "";
  line.remove_prefix(start + 2);
  return line.substr(0, line.find(": "));
}

}  // namespace

absl::string_view RejectionReason(const absl::Status& why) {
  switch (why.code()) {
    case absl::StatusCode::kInvalidArgument:
      return transport::IsNonCanonicalEnvelope(why) ? kRejectedNotCanonical : kRejectedMalformed;
    case absl::StatusCode::kUnauthenticated:
      return transport::IsBadSignature(why) ? kRejectedBadSignature : kRejectedUntrusted;
    case absl::StatusCode::kUnimplemented:
      return kRejectedUnsupported;
    case absl::StatusCode::kPermissionDenied:
      return kRejectedEquivocated;
    case absl::StatusCode::kFailedPrecondition:
      return kRejectedReplicaFailed;
    default:
      return kRejectedStoreError;
  }
}

void AddRejection(ApplyReport& report, uint64_t batch_number, const absl::Status& why) {
  ES_CHECK(!why.ok());
  const absl::string_view reason = RejectionReason(why);
  if (report.rejected == 0) report.first_rejection = why.code();
  ++report.rejected;
  const bool first_of_class = report.rejected_by_reason[std::string(reason)]++ == 0;
  if (report.reasons.size() >= kRejectionExamplesMax) {
    if (!first_of_class) return;
    // Full, and this class has no example yet: it takes the place of the
    // latest example of a class that has several. There is one, as there
    // are fewer classes than places.
    size_t victim = report.reasons.size();
    for (size_t i = report.reasons.size(); i-- > 0 && victim == report.reasons.size();) {
      const absl::string_view c = ClassOfExample(report.reasons[i]);
      int same = 0;
      for (const std::string& r : report.reasons) same += ClassOfExample(r) == c ? 1 : 0;
      if (same > 1) victim = i;
    }
    ES_CHECK(victim < report.reasons.size());
    report.reasons.erase(report.reasons.begin() + static_cast<ptrdiff_t>(victim));
  }
  report.reasons.push_back(absl::StrCat(kBatchPrefix, batch_number, ": ", reason, ": ", why.message()));
}

}  // namespace edgesync::internal
