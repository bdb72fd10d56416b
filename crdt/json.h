// File: crdt/json.h
//
// JSON in and out of documents. Input is parsed with nlohmann/json's SAX
// parser straight into a Tree, so depth, key and string limits are checked
// while parsing and hostile input never builds a large intermediate DOM.
//
// Mapping: objects are maps, arrays are sets of scalars, integers that fit
// int64 are ints, numbers with a fraction or exponent are doubles, and
// bytes are written {"$bytes":"<base64>"} (an object with exactly that one
// key and a string value is always read as bytes). Output is compact,
// single-line, with object keys sorted bytewise and set members in
// canonical order, so equal states print equally.

#ifndef EDGESYNC_CRDT_JSON_H_
#define EDGESYNC_CRDT_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/size_limits.h"
#include "crdt/tree.h"
#include "crdt/value.h"

namespace edgesync::crdt {

// kInvalidArgument with the reason and position for malformed JSON, text
// over kJsonBytesMax, nesting deeper than `depth_max`, invalid UTF-8, a key
// over kMapKeyBytesMax, a duplicate key, an integer outside int64, NaN or
// infinity, an array holding a container, a set element over
// kSetElementBytesMax, or bad base64 in a bytes value.
absl::StatusOr<Tree> ParseJsonTree(absl::string_view text, size_t depth_max = kPathDepthMax);
// As ParseJsonTree, for text that must be one scalar (a set element).
absl::StatusOr<Value> ParseJsonScalar(absl::string_view text);

// Compact JSON for one scalar.
std::string ScalarToJson(const Value& v);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_JSON_H_
