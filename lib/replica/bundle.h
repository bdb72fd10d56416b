// File: lib/replica/bundle.h
//
// Bundles: batches written to a file (USB stick, serial link, satellite
// uplink) and applied elsewhere, verified exactly as off the wire
// (docs/batch-format.md, "Bundle file"). Layout:
//
//   "ESBUNDL1" | u64 batch count | per batch: u32 length, signed batch bytes
//   | BLAKE2b-256 of everything before it (32 bytes)
//
// Integers are big-endian. Import checks the whole file's checksum and
// structure before applying anything.

#ifndef EDGESYNC_LIB_REPLICA_BUNDLE_H_
#define EDGESYNC_LIB_REPLICA_BUNDLE_H_

#include <string>

#include "absl/status/statusor.h"
#include "edgesync/types.h"
#include "lib/replica/replica_core.h"

namespace edgesync::internal {

inline constexpr char kBundleMagic[] = "ESBUNDL1";

absl::StatusOr<BundleReport> ExportBundle(ReplicaCore& core, const std::string& file,
                                          const BundleExportOptions& options);
absl::StatusOr<BundleReport> ImportBundle(ReplicaCore& core, const std::string& file);

// The version vectors of the documents starting with `prefix`.
absl::StatusOr<VersionVectors> ReadVersionVectors(ReplicaCore& core, absl::string_view prefix);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_BUNDLE_H_
