// File: include/edgesync/types.h
//
// Value types shared by the public C++ API: options, reports, changes and
// statistics. All are plain structs (thread-compatible).

#ifndef EDGESYNC_TYPES_H_
#define EDGESYNC_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace edgesync {

// The time source of a replica (HLC times of its writes, and the judge of
// whether a received batch is from the future). Implementations must be
// thread-safe.
class WallClock {
 public:
  virtual ~WallClock() = default;
  // Milliseconds since the Unix epoch.
  virtual uint64_t NowMillis() = 0;
};

// What a replica reads besides the wall clock to tell a wall-clock glitch
// from real time (docs/operating.md "Clock glitches"). Implementations must
// be thread-safe.
class BootClock {
 public:
  virtual ~BootClock() = default;
  // Milliseconds since this boot, counting suspend (CLOCK_BOOTTIME): it
  // never jumps when the wall clock does.
  virtual uint64_t BootMillis() = 0;
  // Names the current boot (/proc/sys/kernel/random/boot_id), at most 64
  // bytes; "" if unknown. Boot clock readings of different boots are not
  // comparable.
  virtual std::string BootId() = 0;
  // Whether the kernel reports the wall clock synchronised (adjtimex: state
  // not TIME_ERROR and STA_UNSYNC clear), e.g. by NTP.
  virtual bool WallSynchronized() = 0;
};

enum class Durability {
  // Every commit is on disk (data and LMDB meta page synced) before Commit
  // returns. The default.
  kDurable,
  // One sync per commit (LMDB MDB_NOMETASYNC): a power cut may undo the
  // last commits but never corrupts the store, and a seq is never reused:
  // batches are only handed to peers or bundles after a full sync.
  kFast,
};

struct ReplicaOptions {
  Durability durability = Durability::kDurable;
  // Initial LMDB map size; the map grows by doubling when full.
  uint64_t map_bytes_initial = uint64_t{64} << 20;
  // Upper bound of the map (the store refuses writes past it).
  uint64_t map_bytes_max = sizeof(size_t) >= 8 ? uint64_t{1} << 40 : uint64_t{1} << 30;
  // How far clocks may honestly disagree. A received batch stamped further
  // ahead of this replica's wall clock is applied at once but raises the
  // replica's clock only to wall + this (and counts in
  // ReplicaStats::batches_beyond_skew). A local wall reading that runs
  // ahead of the boot clock's elapsed time by more than this is suspect
  // (ReplicaStats::clock_suspect_readings).
  uint64_t future_skew_max_ms = 5 * 60 * 1000;
  // Compact this replica's own logs by size tiers after commits.
  bool auto_compact = true;
  // With auto_compact: a commit merges only small tier pairs itself (a
  // bounded cost) and leaves larger ones to a merge thread of this
  // replica, so that no commit waits for a large merge; the thread never
  // holds the write lock except for a short swap of the merged batch
  // (Replica::WaitForCompaction waits for it). When false, every tier
  // merge runs inside the commit that made it due, which is deterministic
  // (the simulator uses it).
  bool compact_in_background = true;
  // Borrowed; must outlive the replica. nullptr: the system clock.
  WallClock* clock = nullptr;
  // Borrowed; must outlive the replica. nullptr: the system's boot clock,
  // boot id and adjtimex if `clock` is nullptr too; with a `clock` of the
  // caller's and no boot clock, that clock is believed (nothing to compare
  // it with).
  BootClock* boot_clock = nullptr;
  // Create the directory, store and identity when missing. When false,
  // opening a directory without a replica is kNotFound.
  bool create_if_missing = true;
};

// What changed in one document, as seen by one replica.
struct Change {
  std::string document;
  // JSON Pointer paths whose rows changed, sorted; at most 4096, with
  // paths_truncated set when there were more.
  std::vector<std::string> paths;
  bool paths_truncated = false;
  // False for a local commit, true for an applied batch.
  bool remote = false;
  // Hex key of the batch's author.
  std::string author;
};

// `change` as one line of JSON (no newline), the shape the C API and
// `edgesync watch` print:
// {"doc":"...","paths":["/a"],"remote":true,"author":"<hex>","paths_truncated":false}
std::string ChangeJson(const Change& change);

// The reason classes of rejected batches: the keys of
// ApplyReport::rejected_by_reason. Stable strings.
inline constexpr char kRejectedMalformed[] = "malformed";            // kInvalidArgument
inline constexpr char kRejectedNotCanonical[] = "not_canonical";     // envelope re-encoded
inline constexpr char kRejectedBadSignature[] = "bad_signature";     // does not verify
inline constexpr char kRejectedUntrusted[] = "untrusted_author";     // author not trusted
inline constexpr char kRejectedEquivocated[] = "equivocated_author"; // proven to equivocate
inline constexpr char kRejectedUnsupported[] = "unsupported_format"; // newer format
inline constexpr char kRejectedReplicaFailed[] = "replica_failed";   // reopen the replica
inline constexpr char kRejectedStoreError[] = "store_error";         // any other local error

// At most this many lines in ApplyReport::reasons, whatever the input.
inline constexpr size_t kRejectionExamplesMax = 8;

// Outcome of applying batches. Its size is bounded whatever the input: a
// bundle of millions of bad batches gives counts, not millions of lines.
struct ApplyReport {
  uint64_t applied = 0;
  uint64_t duplicate = 0;
  uint64_t held = 0;
  uint64_t rejected = 0;
  // Rejected batches per reason class (kRejected* above); the counts add
  // up to `rejected`. Classes with none are absent.
  std::map<std::string, uint64_t> rejected_by_reason;
  // Examples, in batch order: at most kRejectionExamplesMax lines
  // "batch <n>: <class>: <why>" (n counts from 1), e.g.
  // "batch 3: untrusted_author: batch author <64 hex> is not trusted".
  // The first rejection of every class is among them; the rest of the room
  // goes to the earliest rejections.
  std::vector<std::string> reasons;
  // The status code of the first rejected batch (kOk if none was):
  // kUnauthenticated for an untrusted author or a bad signature,
  // kInvalidArgument for a malformed batch, and so on.
  absl::StatusCode first_rejection = absl::StatusCode::kOk;
  // Batches that proved an author signed two values for one dot.
  uint64_t equivocations = 0;
};

// Inclusive seq ranges, sorted and disjoint.
using SeqRanges = std::vector<std::pair<uint64_t, uint64_t>>;
// Per author (64 hex digits): the seqs of that author's batches a replica
// holds for one document. A replica's version vector says exactly which
// batches it has; sync and bundles send what the other side's lacks.
using VersionVector = std::map<std::string, SeqRanges>;
// Per document id.
using VersionVectors = std::map<std::string, VersionVector>;

struct BundleExportOptions {
  // Only documents whose id starts with this.
  std::string prefix;
  // If set, only batches holding seqs these version vectors lack (typically
  // another replica's, from Replica::GetVersionVectors).
  bool only_missing = false;
  VersionVectors since;
};

struct BundleReport {
  ApplyReport batches;  // for export: applied = batches written
  uint64_t bytes = 0;
  // Export: documents written. Import: documents with a batch applied,
  // duplicate or held (a rejected batch's document is not counted).
  uint64_t documents = 0;
};

struct CommitInfo {
  // The batch this commit produced; seq_first == 0 if it changed nothing.
  uint64_t seq_first = 0;
  uint64_t seq_last = 0;
  uint64_t batch_bytes = 0;
};

struct ReplicaStats {
  uint64_t commits = 0;
  uint64_t batches_authored = 0;
  uint64_t batches_applied = 0;
  uint64_t batches_duplicate = 0;
  uint64_t batches_held = 0;
  uint64_t batches_rejected = 0;
  uint64_t rejected_bad_signature = 0;
  uint64_t rejected_untrusted = 0;
  uint64_t rejected_malformed = 0;
  // Batches whose contexts claimed seqs of other authors too far ahead of
  // what this replica holds, or that waited too long for them, or whose
  // author had too many batches waiting (docs/security.md).
  uint64_t rejected_claims = 0;
  // Batches of an author proven to equivocate on their document, at or
  // above the seq of the proof, or signed with this replica's own key and
  // disagreeing with its log (docs/crdt.md "Equivocation").
  uint64_t rejected_equivocated = 0;
  // Proofs of equivocation found (each quarantined an author on a document).
  uint64_t equivocations = 0;
  uint64_t compactions = 0;
  // Background tier merges that failed on a store error (the log keeps
  // the batches they would have merged).
  uint64_t compaction_failures = 0;
  uint64_t bytes_applied = 0;
  uint64_t bytes_authored = 0;
  // Local wall-clock readings that ran ahead of the boot clock by more than
  // future_skew_max_ms while the kernel reported the clock unsynchronised:
  // each commit that read one took its time from the boot clock instead.
  uint64_t clock_suspect_readings = 0;
  // Applied batches stamped more than future_skew_max_ms ahead of this
  // replica's clock (their author's clock, or this one, is wrong).
  uint64_t batches_beyond_skew = 0;
  // Now (not a counter): seqs of this replica's own key that a peer listed
  // and this replica's log lacks, such as writes made after the backup this
  // store was restored from. Commits on their documents are refused until
  // sessions have fetched them back (docs/operating.md "Restored stores").
  uint64_t own_seqs_missing = 0;
  // Own seqs fetched back from peers since the replica was opened.
  uint64_t own_seqs_recovered = 0;
  // Now (0 or 1): a peer proved this replica's own key signed two different
  // batches for one seq; commits are refused until `edgesync rekey DIR`.
  uint64_t own_key_equivocated = 0;
};

}  // namespace edgesync

#endif  // EDGESYNC_TYPES_H_
