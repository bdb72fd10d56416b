// File: tools/json_vv.h
//
// Version vectors as JSON, the form `edgesync vv` prints and
// `edgesync export --since` reads:
//   {"<document id>":{"<author: 64 lowercase hex>":[[first,last],...]},...}
// with inclusive seq ranges.

#ifndef EDGESYNC_TOOLS_JSON_VV_H_
#define EDGESYNC_TOOLS_JSON_VV_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "edgesync/types.h"

namespace edgesync::cli {

// Compact single-line JSON, keys sorted.
std::string VersionVectorsToJson(const VersionVectors& vvs);

// kInvalidArgument, naming the offending part, unless `json` has the shape
// above with 1 <= first <= last in every range.
absl::StatusOr<VersionVectors> VersionVectorsFromJson(absl::string_view json);

// Reads and parses a file of at most kVersionVectorFileBytesMax bytes;
// errors name the file.
inline constexpr size_t kVersionVectorFileBytesMax = size_t{64} << 20;
absl::StatusOr<VersionVectors> ReadVersionVectorsFile(const std::string& path);

}  // namespace edgesync::cli

#endif  // EDGESYNC_TOOLS_JSON_VV_H_
