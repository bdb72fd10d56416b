// File: tests/sim/harness.h
//
// What every simulator scenario builds on: a wall clock reading simulated
// time with a settable skew, identities derived from the seed, scratch
// directories for real LMDB stores (on tmpfs when there is one), replicas
// that trust each other, one session between two replicas run to
// quiescence, and durations printed for people.
//
//   sim::ScratchDir scratch;
//   transport::sim::EventQueue time;
//   absl::StatusOr<sim::TrustedReplicas> r = sim::OpenTrustedReplicas(scratch.path(), 3, rng,
//   &time); sim::PairSync p = sim::SyncPair(*r->replicas[0], *r->replicas[1], 512);

#ifndef EDGESYNC_TESTS_SIM_HARNESS_H_
#define EDGESYNC_TESTS_SIM_HARNESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "edgesync/replica.h"
#include "transport/sim/event_queue.h"
#include "transport/sim/random.h"

namespace edgesync::sim {

// Simulated wall time starts here (Nov 2023), so HLC times look real.
inline constexpr uint64_t kEpochMs = 1700000000000;
inline constexpr int64_t kYearMs = int64_t{365} * 24 * 3600 * 1000;

// A wall clock reading the simulation's time, shifted by skew_ms, and the
// boot clock beside it.
// Thread-confined to its simulation.
class SimClock : public WallClock, public BootClock {
 public:
  // `queue` must outlive the clock.
  explicit SimClock(const transport::sim::EventQueue* queue) : queue_(queue) {}
  uint64_t NowMillis() override;
  // The boot clock: simulated time, unskewed, one boot for the whole run
  // (a crash restarts the process, not the machine), never synchronised.
  uint64_t BootMillis() override;
  std::string BootId() override { return "sim"; }
  bool WallSynchronized() override { return false; }

  int64_t skew_ms = 0;

 private:
  const transport::sim::EventQueue* queue_;
};

// Writes DIR/identity.key for a key pair drawn from `rng` (creating DIR),
// so identities, and everything signed, follow the seed. Returns the
// public key (hex).
std::string MakeIdentity(const std::string& dir, transport::sim::Random& rng);

// The directory scratch directories go under: /dev/shm if writable, else
// $TMPDIR, else /tmp.
std::string ScratchRoot();

// A fresh directory under ScratchRoot(), removed with everything in it
// when destroyed (unless keep). Thread-compatible.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  bool keep = false;

 private:
  std::string path_;
};

// Replicas in DIR/r0, DIR/r1, ... (Durability::kFast), each trusting all
// the others, their clocks reading `time` without skew. Members are
// declared so that replicas close before their clocks go.
struct TrustedReplicas {
  std::vector<std::unique_ptr<SimClock>> clocks;
  std::vector<std::unique_ptr<Replica>> replicas;
  std::vector<std::string> keys_hex;
};
absl::StatusOr<TrustedReplicas> OpenTrustedReplicas(const std::string& dir, int count,
                                                    transport::sim::Random& rng,
                                                    const transport::sim::EventQueue* time);

// What one session between two replicas did: what `a` received, and the
// rounds each side ran.
struct PairSync {
  uint64_t bytes_to_a = 0;
  uint64_t messages_to_a = 0;
  uint64_t rounds_a = 0;
  uint64_t rounds_b = 0;
  uint64_t batches_applied_a = 0;
  bool synced = false;
  absl::Status status;  // the first failure of either side
};

// Runs one session between `a` and `b` in this process, one message each
// way per step (they cross as on a full-duplex link), until neither side
// has anything to send.
PairSync SyncPair(Replica& a, Replica& b, size_t max_message_bytes);

// What a replica's store holds of a document, read through the store
// (lib/store), below the public API.
struct LogSize {
  uint64_t batches = 0;
  uint64_t bytes = 0;
};
// The batches `holder` stores of `author_hex`'s writes to `document`.
absl::StatusOr<LogSize> StoredLog(Replica& holder, const std::string& document,
                                  const std::string& author_hex);
// The state rows of `document`: one per live value, conflict, set member
// and counter total; a tombstone would be one more.
absl::StatusOr<uint64_t> StoredRows(Replica& holder, const std::string& document);

// "850us", "1.5ms", "2.0s", "3.4min", "5.0h", "12.3d".
std::string FormatDuration(uint64_t us);

}  // namespace edgesync::sim

#endif  // EDGESYNC_TESTS_SIM_HARNESS_H_
