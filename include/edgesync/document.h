// File: include/edgesync/document.h
//
// Document: a handle on one document of a replica, and Transaction: a group
// of mutations on one document that commits as one batch.
//
// Paths are RFC 6901 JSON Pointers ("" is the whole document, "/a/b" key b
// of map a, "~1" escapes '/', "~0" escapes '~'). Values are JSON: objects
// are maps, arrays are sets of scalars, integers are int64 and numbers with
// a fraction or exponent are doubles, {"$bytes":"<base64>"} is bytes.
// Reads print compact JSON with sorted keys (docs/crdt.md has the rules for
// conflicts, counters and sets).

#ifndef EDGESYNC_DOCUMENT_H_
#define EDGESYNC_DOCUMENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "edgesync/types.h"

namespace edgesync {

namespace internal {
class ReplicaCore;
struct PendingMutation;
}  // namespace internal

// Buffers mutations; takes the store's write lock only in Commit, so an
// open transaction never blocks other writers. Thread-compatible (one
// thread at a time); it keeps its replica alive.
class Transaction {
 public:
  Transaction(Transaction&&) noexcept;
  Transaction& operator=(Transaction&&) noexcept;
  ~Transaction();  // aborts if neither committed nor aborted

  // Each checks its input now and returns kInvalidArgument for a bad path,
  // JSON or value, kResourceExhausted past the transaction limits, and
  // kFailedPrecondition once the transaction has ended.
  absl::Status Put(absl::string_view path, absl::string_view json);
  absl::Status Delete(absl::string_view path);
  absl::Status CounterAdd(absl::string_view path, int64_t n);
  absl::Status SetAdd(absl::string_view path, absl::string_view json_scalar);
  absl::Status SetRemove(absl::string_view path, absl::string_view json_scalar);

  // Applies the mutations in order, durably, as one signed batch, and ends
  // the transaction. A transaction that changes nothing commits no batch.
  // Its time is the wall clock's, unless that runs ahead of the boot clock
  // by more than future_skew_max_ms (docs/operating.md "Clocks").
  // kOutOfRange if a counter would overflow; kFailedPrecondition if ended,
  // if the store failed earlier, if the store was copied from elsewhere or
  // its own key was proven to equivocate (until Replica::Rekey), or if a
  // peer holds own seqs of the document that this store lacks (a restored
  // snapshot; until a sync session fetches them back); the message says
  // which and what to do (docs/operating.md "The directory"); store errors
  // otherwise. On error nothing of the
  // transaction is applied.
  absl::StatusOr<CommitInfo> Commit();
  // Drops the mutations and ends the transaction.
  void Abort();

  size_t mutation_count() const;

 private:
  friend class Document;
  Transaction(std::shared_ptr<internal::ReplicaCore> core, std::string document);
  absl::Status CheckOpen() const;
  absl::Status Buffer(uint64_t input_bytes, absl::StatusOr<internal::PendingMutation> m);
  std::shared_ptr<internal::ReplicaCore> core_;
  std::string document_;
  std::unique_ptr<std::vector<internal::PendingMutation>> mutations_;
  uint64_t buffered_bytes_ = 0;
  bool ended_ = false;
};

// A handle on one document of a replica. Thread-safe; cheap to copy; keeps
// its replica alive. Each write method is a one-mutation transaction.
class Document {
 public:
  const std::string& id() const { return id_; }

  Transaction Begin() const;
  absl::Status Put(absl::string_view path, absl::string_view json) const;
  absl::Status Delete(absl::string_view path) const;
  absl::Status CounterAdd(absl::string_view path, int64_t n) const;
  absl::Status SetAdd(absl::string_view path, absl::string_view json_scalar) const;
  absl::Status SetRemove(absl::string_view path, absl::string_view json_scalar) const;

  // The value at `path` as compact JSON (winners only). kNotFound if nothing
  // is there; the root of an absent document reads as {}.
  absl::StatusOr<std::string> Get(absl::string_view path = "") const;
  // Conflicts at or under `path`:
  // [{"path":"/a","value":<winner>,"conflicts":[<loser>,...]},...]
  absl::StatusOr<std::string> Conflicts(absl::string_view path = "") const;
  // The hash of the document's canonical state: 64 lowercase hex digits.
  // Two replicas print the same digest exactly when they hold the same
  // state.
  absl::StatusOr<std::string> Digest() const;
  // Replaces this replica's own batches on the document with compacted
  // ones (overwritten and deleted values dropped).
  absl::Status Compact() const;

 private:
  friend class Replica;
  Document(std::shared_ptr<internal::ReplicaCore> core, std::string id)
      : core_(std::move(core)), id_(std::move(id)) {}
  std::shared_ptr<internal::ReplicaCore> core_;
  std::string id_;
};

}  // namespace edgesync

#endif  // EDGESYNC_DOCUMENT_H_
