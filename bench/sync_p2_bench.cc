// The sync workloads of the peer comparison (shared/research/performance.md):
//
// P2: replicas A and B share a document of 50,000 keys (k0..k49999, small
// integers, written by A in one transaction and synced); then, apart, each
// makes W writes, one per transaction, half on keys the other side also
// writes (the j-th overlap write of A and of B hit the same key); then one
// session. P2 uses W = 5,000, P2-large W = 50,000. Reported: bytes each way,
// messages, flights, time, and the ratio to the minimal delta: one (key,
// value, author byte, counter) entry per distinct key each side changed,
// varint-encoded and raw-deflate-compressed at level 9.
//
// P3: 50 replicas each write 200 keys of a shared 5,000-key space apart, one
// write per transaction; then all are merged into one replica.
//
// Steady: A makes W writes (one per transaction, on 1,000 keys) and syncs
// with B after each, and B with C: the bytes per write sent directly by
// the author and forwarded by a relay, as a gossip line pays them.
//
// Usage: sync_p2_bench [--writes N] [--p3] [--steady N]
//        (default: P2, P2-large, P3 and steady with 2,000 writes)
// Writes use Durability::kFast: the sessions, not fsync, are measured.

#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edgesync/replica.h"
#include "edgesync/session.h"
#include "lib/test_util/temp_dir.h"

namespace {

using edgesync::Replica;

// mulberry32, as the peer harness uses.
class Mulberry32 {
 public:
  explicit Mulberry32(uint32_t seed) : state_(seed) {}
  uint32_t Next() {
    uint32_t z = (state_ += 0x6D2B79F5u);
    z = (z ^ (z >> 15)) * (z | 1u);
    z ^= z + (z ^ (z >> 7)) * (z | 61u);
    return z ^ (z >> 14);
  }
  uint32_t Below(uint32_t n) { return Next() % n; }

 private:
  uint32_t state_;
};

void Die(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

std::unique_ptr<Replica> Open(const std::string& dir) {
  edgesync::ReplicaOptions o;
  o.durability = edgesync::Durability::kFast;
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, o);
  Die(r.status(), "open");
  return *std::move(r);
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t RawDeflate9(const std::string& in) {
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  const size_t n = z.total_out;
  deflateEnd(&z);
  return n;
}

// Last write per key of one side: key -> (value, that side's op counter).
using LastWrites = std::map<uint32_t, std::pair<uint32_t, uint32_t>>;

// The minimal delta of both sides; entries in the order that deflates best
// (by key, or by counter), so the baseline is as small as it can be.
size_t MinimalDeflated(const std::vector<LastWrites>& sides, size_t* raw_bytes, size_t* entries) {
  size_t best = SIZE_MAX;
  for (int by_counter = 0; by_counter < 2; ++by_counter) {
    std::string raw;
    *entries = 0;
    for (size_t side = 0; side < sides.size(); ++side) {
      std::vector<std::pair<uint32_t, std::pair<uint32_t, uint32_t>>> list(sides[side].begin(),
                                                                           sides[side].end());
      if (by_counter) {
        std::sort(list.begin(), list.end(),
                  [](const auto& a, const auto& b) { return a.second.second < b.second.second; });
      }
      for (const auto& [key, vc] : list) {
        const std::string k = absl::StrCat("k", key);
        AppendVarint(&raw, k.size());
        raw += k;
        AppendVarint(&raw, vc.first);
        raw.push_back(static_cast<char>(side));
        AppendVarint(&raw, vc.second);
        ++*entries;
      }
    }
    *raw_bytes = raw.size();
    best = std::min(best, RawDeflate9(raw));
  }
  return best;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void RunP2(uint32_t writes) {
  edgesync::internal::TempDir dir;
  auto a = Open(dir.path() + "/a");
  auto b = Open(dir.path() + "/b");
  Die(a->Trust(b->public_key_hex()), "trust");
  Die(b->Trust(a->public_key_hex()), "trust");
  constexpr uint32_t kKeys = 50000;
  constexpr uint32_t kThird = kKeys / 4;  // O, UA, UB: 12,500 keys each
  Mulberry32 rng(42);
  {
    edgesync::Transaction t = a->document("p2").Begin();
    for (uint32_t i = 0; i < kKeys; ++i) {
      Die(t.Put(absl::StrCat("/k", i), std::to_string(rng.Below(1000))), "base put");
    }
    Die(t.Commit().status(), "base commit");
  }
  absl::StatusOr<edgesync::LocalSyncResult> base = edgesync::SyncLocal(*a, *b);
  Die(base.status(), "base sync");

  std::vector<LastWrites> last(2);
  const auto t_write = std::chrono::steady_clock::now();
  for (uint32_t side = 0; side < 2; ++side) {
    Replica& r = side == 0 ? *a : *b;
    Mulberry32 overlap(7);           // same sequence on both sides
    Mulberry32 own(side == 0 ? 11 : 13);
    edgesync::Document doc = r.document("p2");
    for (uint32_t j = 0; j < writes; ++j) {
      const bool shared = j % 2 == 0;
      const uint32_t key = shared ? overlap.Below(kThird)
                                  : (side == 0 ? kThird : 2 * kThird) + own.Below(kThird);
      const uint32_t value = rng.Below(1000);
      Die(doc.Put(absl::StrCat("/k", key), std::to_string(value)), "put");
      last[side][key] = {value, j + 1};
    }
  }
  const double write_s = Seconds(t_write);
  size_t raw = 0;
  size_t entries = 0;
  const size_t minimal = MinimalDeflated(last, &raw, &entries);

  const auto t_sync = std::chrono::steady_clock::now();
  absl::StatusOr<edgesync::LocalSyncResult> r = edgesync::SyncLocal(*a, *b);
  const double sync_s = Seconds(t_sync);
  Die(r.status(), "sync");
  const bool equal = *a->document("p2").Digest() == *b->document("p2").Digest();
  const uint64_t total = r->a.bytes_sent + r->b.bytes_sent;
  std::printf("P2 with %u writes per side (%zu distinct keys changed, both sides)\n", writes, entries);
  std::printf("  A -> B: %llu bytes in %llu messages, %llu flights\n",
              static_cast<unsigned long long>(r->a.bytes_sent),
              static_cast<unsigned long long>(r->a.messages_sent),
              static_cast<unsigned long long>(r->a.flights_sent));
  std::printf("  B -> A: %llu bytes in %llu messages, %llu flights\n",
              static_cast<unsigned long long>(r->b.bytes_sent),
              static_cast<unsigned long long>(r->b.messages_sent),
              static_cast<unsigned long long>(r->b.flights_sent));
  std::printf("  both directions: %llu bytes; minimal delta %zu raw, %zu deflated\n",
              static_cast<unsigned long long>(total), raw, minimal);
  std::printf("  ratio to the deflated minimal: %.3f\n", static_cast<double>(total) / minimal);
  std::printf("  session time %.3f s (both sides, one process); writes took %.2f s\n", sync_s, write_s);
  std::printf("  verified in sync: %s; digests equal: %s\n\n", r->synced ? "yes" : "NO",
              equal ? "yes" : "NO");
}

void RunP3() {
  edgesync::internal::TempDir dir;
  constexpr int kReplicas = 50;
  constexpr int kWrites = 200;
  auto merged = Open(dir.path() + "/merged");
  std::vector<std::unique_ptr<Replica>> writers;
  Mulberry32 rng(3);
  for (int i = 0; i < kReplicas; ++i) {
    writers.push_back(Open(dir.path() + absl::StrCat("/w", i)));
  }
  // One fleet: everyone trusts everyone (the merger relays writers'
  // batches back to the later writers).
  for (auto& w : writers) {
    Die(merged->Trust(w->public_key_hex()), "trust");
    Die(w->Trust(merged->public_key_hex()), "trust");
    for (auto& other : writers) Die(w->Trust(other->public_key_hex()), "trust");
  }
  for (auto& w : writers) {
    edgesync::Document doc = w->document("p3");
    for (int j = 0; j < kWrites; ++j) {
      Die(doc.Put(absl::StrCat("/k", rng.Below(5000)), std::to_string(rng.Below(1000))), "put");
    }
  }
  uint64_t bytes = 0;
  const auto t = std::chrono::steady_clock::now();
  for (auto& w : writers) {
    absl::StatusOr<edgesync::LocalSyncResult> r = edgesync::SyncLocal(*w, *merged);
    Die(r.status(), "sync");
    bytes += r->a.bytes_sent;
  }
  const double s = Seconds(t);
  std::printf("P3: %d replicas x %d writes merged into one\n", kReplicas, kWrites);
  std::printf("  merged state: %s\n", merged->document("p3").Digest()->substr(0, 16).c_str());
  std::printf("  bytes sent by the writers: %llu (%.1f per write)\n",
              static_cast<unsigned long long>(bytes),
              static_cast<double>(bytes) / (kReplicas * kWrites));
  std::printf("  merge time %.3f s (%.0f writes/s, sessions included)\n", s, kReplicas * kWrites / s);
}

void RunSteady(int writes) {
  edgesync::internal::TempDir dir;
  auto a = Open(dir.path() + "/a");
  auto b = Open(dir.path() + "/b");
  auto c = Open(dir.path() + "/c");
  for (Replica* x : {a.get(), b.get(), c.get()}) {
    for (Replica* y : {a.get(), b.get(), c.get()}) Die(x->Trust(y->public_key_hex()), "trust");
  }
  Mulberry32 rng(4);
  uint64_t direct = 0;
  uint64_t relayed = 0;
  uint64_t batches_relayed = 0;
  edgesync::Document doc = a->document("steady");
  for (int i = 0; i < writes; ++i) {
    Die(doc.Put(absl::StrCat("/k", rng.Below(1000)), std::to_string(rng.Below(1000))), "put");
    absl::StatusOr<edgesync::LocalSyncResult> ab = edgesync::SyncLocal(*a, *b);
    Die(ab.status(), "sync a-b");
    absl::StatusOr<edgesync::LocalSyncResult> bc = edgesync::SyncLocal(*b, *c);
    Die(bc.status(), "sync b-c");
    direct += ab->a.bytes_sent;
    relayed += bc->a.bytes_sent;
    batches_relayed += bc->a.batches_sent;
  }
  // A newcomer catching up through the relay.
  auto d = Open(dir.path() + "/d");
  Die(d->Trust(a->public_key_hex()), "trust");
  Die(d->Trust(c->public_key_hex()), "trust");
  Die(c->Trust(d->public_key_hex()), "trust");
  absl::StatusOr<edgesync::LocalSyncResult> cd = edgesync::SyncLocal(*c, *d);
  Die(cd.status(), "sync c-d");
  std::printf("Steady: %d writes on 1,000 keys, A syncs with B and B with C after each\n", writes);
  std::printf("  A -> B (author): %.1f B/write; B -> C (relay): %.1f B/write, %.2f batches/write\n",
              static_cast<double>(direct) / writes, static_cast<double>(relayed) / writes,
              static_cast<double>(batches_relayed) / writes);
  std::printf("  newcomer D catching up from C: %llu bytes in %llu batches (%s)\n",
              static_cast<unsigned long long>(cd->a.bytes_sent),
              static_cast<unsigned long long>(cd->a.batches_sent),
              cd->synced ? "in sync" : "NOT in sync");
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t writes = 0;
  bool p3 = false;
  int steady = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--writes") == 0 && i + 1 < argc) {
      writes = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
    } else if (std::strcmp(argv[i], "--p3") == 0) {
      p3 = true;
    } else if (std::strcmp(argv[i], "--steady") == 0 && i + 1 < argc) {
      steady = std::atoi(argv[++i]);
    }
  }
  if (steady > 0) {
    RunSteady(steady);
  } else if (p3) {
    RunP3();
  } else if (writes > 0) {
    RunP2(writes);
  } else {
    RunP2(5000);
    RunP2(50000);
    RunP3();
    RunSteady(2000);
  }
  return 0;
}
