#include "crdt/delta.h"

#include "absl/strings/str_cat.h"
#include "crdt/size_limits.h"

namespace edgesync::crdt {

absl::Status ValidateDelta(const Delta& delta, size_t max_variants) {
  for (size_t i = 0; i < delta.rows.size(); ++i) {
    const Row& row = delta.rows[i];
    if (i > 0 && !(delta.rows[i - 1].key < row.key)) {
      return absl::InvalidArgumentError("delta rows are not sorted and distinct");
    }
    if (absl::Status s = ValidateRow(row.key, row.value, max_variants); !s.ok()) return s;
    if (!delta.context.Contains(row.key.dot)) {
      return absl::InvalidArgumentError("delta row's dot is missing from its context");
    }
  }
  for (const auto& [author, dots] : delta.context.by_author()) {
    if (dots.empty()) return absl::InvalidArgumentError("delta context has an empty author entry");
    if (dots.Max() > kDotMax) return absl::InvalidArgumentError("delta context dot out of range");
  }
  return absl::OkStatus();
}

size_t DistinctPathBytes(const Delta& delta) {
  size_t bytes = 0;
  const Path* previous = nullptr;
  for (const Row& row : delta.rows) {
    if (previous == nullptr || !(*previous == row.key.path)) bytes += row.key.path.encoded().size();
    previous = &row.key.path;
  }
  return bytes;
}

absl::Status ValidateBatchDelta(const Delta& delta, const AuthorKey& author, uint64_t first,
                                uint64_t last) {
  if (first == 0 || first > last || last > kDotMax) {
    return absl::InvalidArgumentError(absl::StrCat("bad seq range ", first, "..", last));
  }
  for (const Row& row : delta.rows) {
    if (row.key.dot.author != author || row.key.dot.n < first || row.key.dot.n > last) {
      return absl::InvalidArgumentError(
          "batch holds an element whose dot is not its author's or lies outside its seq range");
    }
  }
  if (!delta.context.Of(author).ContainsAll(first, last)) {
    return absl::InvalidArgumentError("batch context does not cover its seq range");
  }
  return absl::OkStatus();
}

}  // namespace edgesync::crdt
