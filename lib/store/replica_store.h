// File: lib/store/replica_store.h
//
// ReplicaStore: the replica's tables in one LMDB environment
// (docs/storage-format.md is the normative layout), and StoreTxn, typed
// access to them inside one LMDB transaction: documents, authors, trust,
// per-(document, author) batch logs, seq coverage, held batches,
// equivocation records and the change feed. A document's rows and causal
// context are reached through DocumentState (document_state.h).

#ifndef EDGESYNC_LIB_STORE_REPLICA_STORE_H_
#define EDGESYNC_LIB_STORE_REPLICA_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "crdt/dot.h"
#include "crdt/range_set.h"
#include "crdt/state_hash.h"
#include "lib/store/lmdb_env.h"

namespace edgesync::internal {

// Format 2 replaced time-held batches (`held`, format 1) with batches
// waiting for the batches their claims need (`waiting`) and added
// `inert_claims`; a format-1 store is migrated on open (ReplicaCore).
inline constexpr uint32_t kStoreFormatVersion = 2;

// Meta "clock": the last local HLC time taken, and the boot and boot-clock
// reading it was taken at.
struct ClockMark {
  uint64_t hlc = 0;
  uint64_t boot_ms = 0;
  std::string boot_id;  // at most kBootIdBytesMax; "" = unknown
};
inline constexpr size_t kBootIdBytesMax = 64;

// Meta "location": the machine and the data file a store lives in.
struct StoreLocation {
  std::string machine_id;  // at most kMachineIdBytesMax; "" = unknown
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const StoreLocation&) const = default;
};
inline constexpr size_t kMachineIdBytesMax = 64;

// Meta "own_equivocation": a peer proved that this replica's own key signed
// two different batches for one seq (a restored copy wrote before it met a
// peer); commits are refused until `edgesync rekey`.
struct OwnEquivocation {
  std::string document;
  uint64_t seq = 0;
};

// The named databases. Thread-compatible value type.
struct StoreDbs {
  Dbi meta;
  Dbi documents;
  Dbi document_ids;
  Dbi authors;
  Dbi author_keys;
  Dbi trusted;
  Dbi paths;
  Dbi path_parents;
  Dbi rows;
  Dbi dots;
  Dbi context;
  Dbi coverage;
  Dbi log;
  Dbi held;  // format 1 only: emptied by the migration to format 2
  Dbi waiting;
  Dbi inert_claims;
  Dbi equivocations;
  Dbi changes;
  Dbi own_missing;
};

// A document's record. Thread-compatible value type.
struct DocumentRecord {
  std::string id;
  uint32_t num = 0;
  uint64_t next_path = 1;  // path number 0 is the root
  crdt::StateHashSum hash;
};

// One stored batch. `bytes` points into the map: valid until the
// transaction ends or writes.
struct LogEntry {
  uint64_t first = 0;
  uint64_t last = 0;
  std::string key;  // the log key, for Erase
  absl::string_view bytes;
};

// A batch waiting for the batches its claims need. `bytes` as LogEntry's.
struct WaitingEntry {
  std::string key;  // for EraseWaiting
  crdt::AuthorKey author;
  std::string document;
  uint64_t since_ms = 0;  // when it began waiting (wall clock)
  absl::string_view bytes;
};

// Two batches one author signed for one document that give a dot two
// values (docs/crdt.md#equivocation): the author's batches reaching `seq`
// or above are not accepted on that document. Thread-compatible value type.
struct EquivocationProof {
  uint64_t seq = 0;  // the lowest dot the two batches disagree on
  std::string first_batch;
  std::string second_batch;
};

// One entry of the change feed.
struct ChangeRecord {
  uint64_t seq = 0;
  std::string document;
  std::vector<std::string> paths;
  bool paths_truncated = false;
  bool remote = false;
  crdt::AuthorKey author;
};

class StoreTxn;

// Thread-safe.
class ReplicaStore {
 public:
  // Opens or creates the store in `dir`. On creation, records the format
  // version and `self` and trusts `self`. kUnimplemented for a store of a
  // newer format; kDataLoss if `self` differs from the recorded key (the
  // identity file does not belong to this store) or the store is damaged.
  static absl::StatusOr<std::unique_ptr<ReplicaStore>> Open(const std::string& dir,
                                                            const LmdbOptions& options,
                                                            const crdt::AuthorKey& self);

  // Runs `body` in a write (read) transaction; see LmdbEnv::Write. The body
  // may run more than once.
  absl::Status Write(absl::FunctionRef<absl::Status(StoreTxn&)> body);
  absl::Status Read(absl::FunctionRef<absl::Status(StoreTxn&)> body);

  LmdbEnv& env() { return *env_; }
  const StoreDbs& dbs() const { return dbs_; }

 private:
  ReplicaStore(std::unique_ptr<LmdbEnv> env, StoreDbs dbs) : env_(std::move(env)), dbs_(dbs) {}
  std::unique_ptr<LmdbEnv> env_;
  StoreDbs dbs_;
};

// Typed access inside one transaction. Thread-confined to the body it was
// given to. Write methods REQUIRE a write transaction (a bug otherwise).
// Errors: those of LmdbEnv's transactions; kDataLoss for a record the store
// cannot parse.
class StoreTxn {
 public:
  StoreTxn(const StoreDbs& dbs, ReadTxn* read, WriteTxn* write)
      : dbs_(dbs), read_(read), write_(write) {}

  bool writable() const { return write_ != nullptr; }
  ReadTxn& read() { return *read_; }
  WriteTxn& write();
  const StoreDbs& dbs() const { return dbs_; }

  // meta
  absl::StatusOr<uint64_t> HlcHighWater();
  absl::Status SetHlcHighWater(uint64_t hlc);
  // The last local time taken (lib/replica/clock_guard.h); nullopt before
  // the first one.
  absl::StatusOr<std::optional<ClockMark>> GetClockMark();
  absl::Status SetClockMark(const ClockMark& mark);
  // Where the store was last opened for writing (lib/replica/store_location.h);
  // nullopt for a store that never recorded one.
  absl::StatusOr<std::optional<StoreLocation>> GetLocation();
  absl::Status SetLocation(const StoreLocation& location);
  // nullopt unless this replica's own key was proven to equivocate.
  absl::StatusOr<std::optional<OwnEquivocation>> GetOwnEquivocation();
  absl::Status SetOwnEquivocation(const OwnEquivocation& e);
  // Gives the store the identity `key` (ReplicaCore::Rekey): meta
  // public_key, trusted; forgets the old key's own-equivocation record and
  // its missing own seqs.
  absl::Status SetPublicKey(const crdt::AuthorKey& key);

  // own_missing: per document, own seqs a peer holds that this replica's
  // log lacked when the peer listed them (a restored copy of the store)
  absl::StatusOr<crdt::RangeSet> OwnMissing(absl::string_view document);
  // Erases the entry when `seqs` is empty.
  absl::Status SetOwnMissing(absl::string_view document, const crdt::RangeSet& seqs);
  absl::Status ForEachOwnMissing(
      absl::FunctionRef<bool(absl::string_view document, const crdt::RangeSet& seqs)> fn);

  // authors: interned as 32-bit numbers
  absl::StatusOr<std::optional<uint32_t>> FindAuthor(const crdt::AuthorKey& key);
  absl::StatusOr<uint32_t> InternAuthor(const crdt::AuthorKey& key);
  absl::StatusOr<crdt::AuthorKey> AuthorKeyOf(uint32_t num);

  // trust
  absl::StatusOr<bool> IsTrusted(const crdt::AuthorKey& key);
  absl::Status AddTrusted(const crdt::AuthorKey& key);
  absl::Status ForEachTrusted(absl::FunctionRef<void(const crdt::AuthorKey&)> fn);

  // documents
  absl::StatusOr<std::optional<DocumentRecord>> FindDocument(absl::string_view id);
  absl::StatusOr<DocumentRecord> GetOrCreateDocument(absl::string_view id);
  absl::Status SaveDocument(const DocumentRecord& doc);
  // Every document whose id starts with `prefix`, in id order.
  absl::Status ForEachDocument(absl::string_view prefix,
                               absl::FunctionRef<bool(const DocumentRecord&)> fn);

  // seq coverage: which seqs of `author` this replica holds batches for
  absl::StatusOr<crdt::RangeSet> Coverage(uint32_t doc, const crdt::AuthorKey& author);
  absl::Status SetCoverage(uint32_t doc, const crdt::AuthorKey& author, const crdt::RangeSet& seqs);
  absl::Status ForEachCoverage(uint32_t doc,
                               absl::FunctionRef<bool(const crdt::AuthorKey&, const crdt::RangeSet&)> fn);

  // batch logs
  absl::Status PutLog(uint32_t doc, const crdt::AuthorKey& author, uint64_t first, uint64_t last,
                      absl::string_view batch);
  absl::Status EraseLog(const std::string& key);
  // Entries of (doc, author) overlapping [first, last], in order of first.
  absl::Status ForEachLog(uint32_t doc, const crdt::AuthorKey& author, uint64_t first,
                          uint64_t last, absl::FunctionRef<bool(const LogEntry&)> fn);

  // Format 1's time-held batches (key, batch), copied, for the migration.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LegacyHeld(size_t count_max);
  absl::Status EraseLegacyHeld(const std::string& key);
  // The recorded store format; older than kStoreFormatVersion until
  // ReplicaCore's migration has run.
  absl::StatusOr<uint32_t> FormatVersion();
  absl::Status SetFormatVersion(uint32_t version);

  // batches waiting for the batches their claims need (lib/replica/claims.h)
  absl::Status PutWaiting(const crdt::AuthorKey& author, absl::string_view document, uint64_t first,
                          uint64_t since_ms, absl::string_view batch);
  absl::StatusOr<uint64_t> CountWaiting();
  // The `waiting` key PutWaiting stores a batch under.
  static std::string WaitingKey(const crdt::AuthorKey& author, absl::string_view document,
                                uint64_t first, absl::string_view batch);
  // Waiting batches of `author` (all documents): how many, and their bytes.
  absl::StatusOr<std::pair<uint64_t, uint64_t>> WaitingOf(const crdt::AuthorKey& author);
  // Every waiting batch, in (author, document, first) order.
  absl::Status ForEachWaiting(absl::FunctionRef<bool(const WaitingEntry&)> fn);
  absl::Status EraseWaiting(const std::string& key);

  // inert claims: documents holding batches whose contexts claim dots of
  // an author this replica did not accept when they were applied
  absl::Status PutInertClaim(const crdt::AuthorKey& claimed, uint32_t doc);
  // The documents with inert claims on `claimed`.
  absl::StatusOr<std::vector<uint32_t>> InertClaimDocuments(const crdt::AuthorKey& claimed);
  absl::Status EraseInertClaim(const crdt::AuthorKey& claimed, uint32_t doc);
  // The document record by number; nullopt if absent.
  absl::StatusOr<std::optional<DocumentRecord>> FindDocumentByNum(uint32_t num);

  // equivocation proofs: per (doc, author) at most one, the lowest found
  absl::Status PutEquivocationProof(uint32_t doc, const crdt::AuthorKey& author,
                                    const EquivocationProof& proof);
  absl::StatusOr<std::optional<EquivocationProof>> GetEquivocationProof(
      uint32_t doc, const crdt::AuthorKey& author);
  // The proofs of `doc`, copied, in author-number order.
  absl::StatusOr<std::vector<std::pair<crdt::AuthorKey, EquivocationProof>>> EquivocationProofs(
      uint32_t doc);
  absl::StatusOr<uint64_t> CountEquivocations(uint32_t doc);
  // Format 1's equivocation records (doc, author, dot), for the migration;
  // EraseLegacyEquivocations removes them all.
  absl::StatusOr<std::vector<std::tuple<uint32_t, crdt::AuthorKey, uint64_t>>>
  LegacyEquivocations();
  absl::Status EraseLegacyEquivocations();
  // The stored batch under a log key, copied; nullopt if gone.
  absl::StatusOr<std::optional<std::string>> GetLog(absl::string_view key);

  // change feed (read by `edgesync watch` in other processes)
  absl::Status AppendChange(ChangeRecord change);
  absl::Status ForEachChangeAfter(uint64_t seq, absl::FunctionRef<bool(const ChangeRecord&)> fn);
  absl::StatusOr<uint64_t> LastChangeSeq();

 private:
  absl::StatusOr<std::optional<std::string>> GetCopy(Dbi db, absl::string_view key);
  absl::StatusOr<std::string> DocAuthorKey(uint32_t doc, const crdt::AuthorKey& author, bool intern);
  absl::StatusOr<uint64_t> NextCounter(absl::string_view name);

  const StoreDbs& dbs_;
  ReadTxn* read_;
  WriteTxn* write_;
  absl::flat_hash_map<uint32_t, crdt::AuthorKey> author_keys_;
  absl::flat_hash_map<crdt::AuthorKey, uint32_t> author_nums_;
};

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_STORE_REPLICA_STORE_H_
