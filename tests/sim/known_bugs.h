// File: tests/sim/known_bugs.h
//
// Product bugs (lib/, transport/) that the simulator found. Each has a
// small deterministic reproducer, ReproduceKnownBug(K) (`sim --known-bug
// K`), a meson test: expected to fail while the bug is open, a regression
// test once it is fixed (sim_known_bugs_open in tests/sim/meson.build).
// All five below are fixed; the seeds run without workarounds.
//
//  1. Shared partial transfers (seed 1): two sessions of one replica
//     receiving the same chunked batch shared one PartialTransfers entry;
//     when one completed (or restarted) the transfer, the other failed with
//     "batch chunk at offset N does not continue what was received" on a
//     clean link.
//  2. Multi-segment message size (seed 15): SyncSession::BatchesMessage and
//     PushMessage counted 8 bytes per batch, but a message past
//     MallocMessageBuilder's first segment (8 KiB) became multi-segment,
//     every Data pointer there needing a far-pointer landing pad plus a
//     segment table: with a limit over 8 KiB and many small batches the
//     encoded message exceeded the limit and the ES_CHECK in NextMessage
//     aborted the process.
//  3. Relayed batches never compacted (the long disconnection): a relay kept
//     other authors' batches verbatim and their authors' later compactions
//     never replaced them (a session only sent seqs the peer lacked), so a
//     replica catching up through a relay received every batch that author
//     ever sent: bytes followed the number of writes, not live keys. Fixed
//     by aligning an author's cuts with its stored batches (PlanBatches).
//  4. Author's log not compacted (the long disconnection once its transactions
//     varied in size, after bug 3's fix): ReplicaCore::CompactTiers
//     (lib/replica/replica_core.cc) only ever looks at the newest two entries
//     of the author's own log and stops at the first pair not within 2x in
//     size. Once a newer entry is more than twice the one below it (a larger
//     transaction after small ones, or a merge that outgrew its older
//     neighbour), the entries below it are never looked at again, even where
//     neighbours there are within 2x. With transactions of varying sizes the
//     author's log grows with the number of transactions (1000 transactions on
//     500 keys: 47 batches, 48 KB, against 3 KB compacted afresh), its store
//     grows with writes, and a relay forwards that log as stored, so a replica
//     catching up through a relay receives bytes that follow the writes (long
//     disconnection: B's part 107 KB at 25,000 writes, 401 KB at 100,000, 790
//     KB at 200,000, for the same ~3,750 live keys). A replica catching up
//     from the author directly is not affected (CutOwnRange compacts afresh).
//     Fixed: every pair is looked at, and sizes under 1 KiB count as 1 KiB
//     (a batch's fixed ~280 bytes kept one-write batches from merging).
//  5. Parked prefix dropped (seeds 17, 29 and 30, after bug
//     1's fix): PartialTransfers (transport/partial_transfers.cc) keeps
//     one parked prefix per batch, shared by the replica's sessions, and a
//     session's hello announces it (SyncSession::HelloMessage); the peer
//     then resumes at that offset. Until the peer's first chunk arrives,
//     another session of the same replica can make the prefix go away or
//     change: completing the batch erases it (Append), parking a longer
//     prefix replaces it (Park), and EvictParked may drop it. The resumed
//     chunk then "does not continue what was received" and a healthy
//     session fails with kInvalidArgument. Fixed: announced prefixes are
//     pinned until the announcing session ends, and a resume may take the
//     first bytes of a longer prefix.

#ifndef EDGESYNC_TESTS_SIM_KNOWN_BUGS_H_
#define EDGESYNC_TESTS_SIM_KNOWN_BUGS_H_

#include "absl/status/status.h"

namespace edgesync::sim {

inline constexpr int kKnownBugs = 5;

// Runs the reproducer of known bug `bug` (a few replicas and sessions, no
// network): what went wrong while the bug is there (bug 2 aborts the
// process), OK once it is fixed; kInvalidArgument for an unknown bug.
absl::Status ReproduceKnownBug(int bug);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_KNOWN_BUGS_H_
