// File: crdt/read.h
//
// Reads of a document state: the value at a path as JSON, and the conflicts
// under it. Reading touches only the rows under the path.
//
// Presentation rules (docs/crdt.md):
// - One path may hold several facets after concurrent writes of different
//   types. The first present in the order map, set, counter, register is the
//   value; the others are conflicts.
// - A register's winner is the variant with the highest HLC time, then the
//   highest author key, then the highest canonical value bytes; the other
//   variants are conflicts.
// - A counter is the sum of every author's running total, clamped to int64.
// - A map is an object with sorted keys; a set is an array in canonical
//   element order: by type (null, bools, ints, doubles, strings, bytes),
//   then within a type false < true, numbers numerically, strings and
//   bytes bytewise.

#ifndef EDGESYNC_CRDT_READ_H_
#define EDGESYNC_CRDT_READ_H_

#include <string>

#include "absl/status/statusor.h"
#include "crdt/path.h"
#include "crdt/state_store.h"

namespace edgesync::crdt {

// The value at `path` as compact JSON. kNotFound if nothing is there (the
// root always exists: an empty document reads as {}).
absl::StatusOr<std::string> ReadJson(StateStore* state, const Path& path);

// Every conflict at or under `path` as a JSON array, sorted by path:
//   [{"path":"/a","value":<winner>,"conflicts":[<loser>,...]},...]
// kNotFound if nothing is at `path`.
absl::StatusOr<std::string> ReadConflictsJson(StateStore* state, const Path& path);

}  // namespace edgesync::crdt

#endif  // EDGESYNC_CRDT_READ_H_
