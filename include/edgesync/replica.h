// File: include/edgesync/replica.h
//
// Replica: one device's durable copy of its documents: one directory holding
// an LMDB environment and the replica's ed25519 identity. Local writes
// commit without asking anyone; every committed transaction becomes one
// signed delta batch; batches from trusted authors are verified and joined;
// any two replicas holding the same batches hold the same state.
//
//   absl::StatusOr<std::unique_ptr<edgesync::Replica>> r = edgesync::Replica::Open("data");
//   edgesync::Document doc = (*r)->document("pump-7");
//   absl::Status s = doc.Put("/rpm", "1450");
//   absl::StatusOr<std::string> json = doc.Get();       // {"rpm":1450}
//
// Errors are absl::Status with these codes (kInvalidArgument
// for bad input, kUnauthenticated for bad signatures or untrusted authors,
// kDataLoss for a damaged store, kResourceExhausted for a limit,
// kFailedPrecondition for wrong state, kUnimplemented for a newer format).
// Nothing here throws.

#ifndef EDGESYNC_REPLICA_H_
#define EDGESYNC_REPLICA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "edgesync/document.h"
#include "edgesync/types.h"

namespace edgesync {

namespace internal {
class ReplicaCore;
}  // namespace internal

// Thread-safe: any number of threads may use one replica (and documents and
// transactions of it); writers serialise at commit. Several processes may
// open the same directory at once.
class Replica {
 public:
  // Opens the replica in `dir`, creating the directory, the store and a new
  // identity if missing (unless options.create_if_missing is false: then
  // kNotFound). kUnimplemented if the store was written by a newer
  // format; kDataLoss if it is damaged or its identity file is missing;
  // kFailedPrecondition if this process already has it open;
  // kInvalidArgument for bad options.
  static absl::StatusOr<std::unique_ptr<Replica>> Open(const std::string& dir,
                                                       const ReplicaOptions& options = {});
  // Gives the replica in `dir` a new signing identity (a new ed25519 key)
  // and returns its public key (64 lowercase hex digits): `edgesync rekey`.
  // The store trusts the new key and records where it lives now, so a
  // store copied from elsewhere may commit again, and a refusal because the
  // old key equivocated (or because peers hold own seqs its log lacks) is
  // lifted. Every batch stays; the old key's are another author's from then
  // on (still trusted here). Peers must trust the new key to accept its
  // batches. kNotFound if `dir` holds no replica; kFailedPrecondition if
  // this process has it open (close it first; stop other processes using
  // it, which would go on signing with the old key); errors as Open.
  static absl::StatusOr<std::string> Rekey(const std::string& dir,
                                           const ReplicaOptions& options = {});
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  // This replica's ed25519 public key: 64 lowercase hex digits.
  const std::string& public_key_hex() const;

  // Accepts batches authored by `key_hex` (64 hex digits) from now on.
  // kInvalidArgument for a malformed key. Trusting a key twice is OK.
  absl::Status Trust(absl::string_view key_hex);
  // The trusted keys (this replica's own always among them), sorted.
  absl::StatusOr<std::vector<std::string>> TrustedKeys() const;

  // A handle on one document (it need not exist yet). The id is checked when
  // first used: UTF-8, 1 to 255 bytes.
  Document document(absl::string_view id);
  // Ids of the documents holding any state, sorted bytewise, optionally only
  // those starting with `prefix`.
  absl::StatusOr<std::vector<std::string>> DocumentIds(absl::string_view prefix = "") const;

  // The version vector of every document whose id starts with `prefix`.
  absl::StatusOr<VersionVectors> GetVersionVectors(absl::string_view prefix = "") const;

  // Verifies and applies signed batches from elsewhere (a peer, a bundle).
  // Each is checked for size, signature, a trusted author and a well formed
  // delta, then joined, logged and counted in its own storage transaction:
  // a rejected batch changes nothing, and a batch whose predecessors are
  // missing still applies. A batch timestamped more than
  // options.future_skew_max_ms ahead of this replica's clock is applied at
  // once too (counted in ReplicaStats::batches_beyond_skew); it raises this
  // replica's clock only to wall + future_skew_max_ms. A store copied from
  // elsewhere applies batches as usual (it only refuses commits).
  ApplyReport ApplyBatches(const std::vector<std::string>& batches);

  // Writes the batches of every document whose id starts with
  // options.prefix into `file` (replaced atomically) with a checksum over
  // the whole file. kInvalidArgument for a bad path; errors from the file
  // system as kUnavailable/kPermissionDenied/kNotFound.
  absl::StatusOr<BundleReport> ExportBundle(const std::string& file,
                                            const BundleExportOptions& options = {});
  // Verifies a bundle's checksum, then verifies and applies every batch in
  // it exactly as ApplyBatches does. A truncated or corrupted file is
  // kDataLoss and changes nothing. The report counts applied, duplicate,
  // held and rejected batches, the rejected ones per reason class with a
  // few examples (bounded, see ApplyReport); importing a replica's own
  // batches back counts as duplicates.
  absl::StatusOr<BundleReport> ImportBundle(const std::string& file);

  // Calls `callback` after every change to a document whose id starts with
  // `prefix` ("" for all), local or remote, on the thread that applied it,
  // before that call returns. The callback may read the replica; it must
  // not block for long. Returns an id for Unsubscribe.
  uint64_t Subscribe(absl::string_view prefix, std::function<void(const Change&)> callback);
  // Stops a subscription; unknown ids are ignored. After it returns, the
  // callback is not running and will not run again.
  void Unsubscribe(uint64_t id);

  // Counters of this replica since it was opened.
  ReplicaStats stats() const;

  // Returns once the tier merges that commits so far handed to the merge
  // thread have run (ReplicaOptions::compact_in_background; at once when
  // it is off). Commits of other threads meanwhile may hand it more.
  void WaitForCompaction();

  // The engine behind this API, for lib/ (sessions, node, C API).
  internal::ReplicaCore& core() { return *core_; }
  std::shared_ptr<internal::ReplicaCore> core_ptr() const { return core_; }

 private:
  explicit Replica(std::shared_ptr<internal::ReplicaCore> core);
  std::shared_ptr<internal::ReplicaCore> core_;
};

}  // namespace edgesync

#endif  // EDGESYNC_REPLICA_H_
