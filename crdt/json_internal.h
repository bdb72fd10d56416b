// File: crdt/json_internal.h
//
// nlohmann/json helpers shared by crdt/ sources. Not part of any public
// header: nlohmann stays out of widely included headers.

#ifndef EDGESYNC_CRDT_JSON_INTERNAL_H_
#define EDGESYNC_CRDT_JSON_INTERNAL_H_

#include <nlohmann/json.hpp>

#include "crdt/value.h"

namespace edgesync::crdt::internal {

nlohmann::json ScalarToJsonValue(const Value& v);
// dump() of a value built from valid UTF-8 only.
std::string DumpCompact(const nlohmann::json& j);

}  // namespace edgesync::crdt::internal

#endif  // EDGESYNC_CRDT_JSON_INTERNAL_H_
