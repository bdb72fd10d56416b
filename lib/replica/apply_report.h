// File: lib/replica/apply_report.h
//
// Counting rejected batches into an ApplyReport with bounded memory: a count
// per reason class and at most kRejectionExamplesMax example lines, however
// many batches a bundle or a call holds (security issue 9: a bundle of
// 5,000,000 empty entries once made 5,000,000 lines).
//
//   ApplyReport report;
//   AddRejection(report, /*batch_number=*/3, result.status);

#ifndef EDGESYNC_LIB_REPLICA_APPLY_REPORT_H_
#define EDGESYNC_LIB_REPLICA_APPLY_REPORT_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "edgesync/types.h"

namespace edgesync::internal {

// The reason class (kRejected* in edgesync/types.h) of a batch rejected
// with `why`: derived from the status code, and for kInvalidArgument and
// kUnauthenticated from the tags transport::OpenBatch puts on a
// non-canonical envelope and a bad signature (any other kUnauthenticated
// is an untrusted author).
absl::string_view RejectionReason(const absl::Status& why);

// Counts one rejected batch, number `batch_number` (from 1) of the call or
// file: `rejected`, `first_rejection`, `rejected_by_reason`, and an example
// line in `reasons` if it is the first of its class or there is room.
// REQUIRES: !why.ok().
void AddRejection(ApplyReport& report, uint64_t batch_number, const absl::Status& why);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_APPLY_REPORT_H_
