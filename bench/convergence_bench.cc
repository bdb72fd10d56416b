// The figures of issue 10 that are bytes, not times: a relay's log of an
// author's 3,000 pushed writes once the author compacted, what a newcomer
// receives from that relay and from the author, the bytes of an idle round
// and of a one-write session among 1,000 documents, and the bytes of
// one-write sessions as an author's tiers cascade. A plain program over the
// public API, so that the same file measures an older build too.
//
//   build/bench/convergence_bench [writes=3000] [documents=1000] [keys=979]

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "edgesync/session.h"
#include "lib/test_util/temp_dir.h"

namespace edgesync {
namespace {

ReplicaOptions Fast(bool auto_compact) {
  ReplicaOptions o;
  o.durability = Durability::kFast;
  o.auto_compact = auto_compact;
  return o;
}

std::unique_ptr<Replica> MustOpen(const std::string& dir, bool auto_compact = true) {
  absl::StatusOr<std::unique_ptr<Replica>> r = Replica::Open(dir, Fast(auto_compact));
  if (!r.ok()) {
    std::fprintf(stderr, "open %s: %s\n", dir.c_str(), r.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(r);
}

void Must(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

void TrustEachOther(Replica& a, Replica& b) {
  Must(a.Trust(b.public_key_hex()), "trust");
  Must(b.Trust(a.public_key_hex()), "trust");
}

uint64_t LogBytes(Replica& r, const std::string& file) {
  absl::StatusOr<BundleReport> report = r.ExportBundle(file);
  Must(report.status(), "export");
  return report->bytes;
}

// Bytes both ways of one SyncLocal.
uint64_t SyncBytes(Replica& a, Replica& b, uint64_t* received_by_b = nullptr) {
  absl::StatusOr<LocalSyncResult> r = SyncLocal(a, b);
  Must(r.status(), "sync");
  if (received_by_b != nullptr) *received_by_b = r->b.bytes_received;
  return r->a.bytes_sent + r->b.bytes_sent;
}

void Relay(int writes) {
  internal::TempDir dir;
  // The author's tiers would merge each write into the batch the next
  // export carries; a push carries the commit's own batch.
  std::unique_ptr<Replica> a = MustOpen(dir.path() + "/a", /*auto_compact=*/false);
  std::unique_ptr<Replica> relay = MustOpen(dir.path() + "/relay");
  TrustEachOther(*a, *relay);
  for (int i = 0; i < writes; ++i) {
    Must(a->document("d").Put("/k", std::to_string(i)), "put");
    // What a gossip push carries: the batches the relay lacks.
    BundleExportOptions only_new;
    only_new.only_missing = true;
    only_new.since = *relay->GetVersionVectors();
    const std::string file = dir.path() + "/push";
    Must(a->ExportBundle(file, only_new).status(), "export");
    Must(relay->ImportBundle(file).status(), "import");
  }
  Must(a->document("d").Compact(), "compact");
  const uint64_t author = LogBytes(*a, dir.path() + "/a.bundle");
  const uint64_t before = LogBytes(*relay, dir.path() + "/r0.bundle");
  SyncBytes(*a, *relay);
  const uint64_t after = LogBytes(*relay, dir.path() + "/r1.bundle");
  std::unique_ptr<Replica> via_relay = MustOpen(dir.path() + "/n1");
  std::unique_ptr<Replica> direct = MustOpen(dir.path() + "/n2");
  TrustEachOther(*relay, *via_relay);
  Must(via_relay->Trust(a->public_key_hex()), "trust");
  TrustEachOther(*a, *direct);
  uint64_t from_relay = 0;
  uint64_t from_author = 0;
  SyncBytes(*relay, *via_relay, &from_relay);
  SyncBytes(*a, *direct, &from_author);
  std::printf("relay, %d pushed writes to one key: author's log %llu B; relay's log %llu B before "
              "syncing with the author, %llu B after (%.2fx the author's)\n",
              writes, static_cast<unsigned long long>(author),
              static_cast<unsigned long long>(before), static_cast<unsigned long long>(after),
              static_cast<double>(after) / static_cast<double>(author));
  std::printf("newcomer receives %llu B from the relay, %llu B from the author (%.2fx)\n",
              static_cast<unsigned long long>(from_relay),
              static_cast<unsigned long long>(from_author),
              static_cast<double>(from_relay) / static_cast<double>(from_author));
}

void ManyDocuments(int documents) {
  internal::TempDir dir;
  std::unique_ptr<Replica> a = MustOpen(dir.path() + "/a");
  std::unique_ptr<Replica> b = MustOpen(dir.path() + "/b");
  TrustEachOther(*a, *b);
  for (int i = 0; i < documents; ++i) {
    Must(a->document(absl::StrCat("doc", i)).Put("/v", std::to_string(i)), "put");
  }
  SyncBytes(*a, *b);
  const uint64_t idle = SyncBytes(*a, *b);
  Must(a->document("doc7").Put("/v", "-1"), "put");
  const uint64_t one_write = SyncBytes(*a, *b);
  std::printf("%d documents in sync: idle round %llu B, session for one write %llu B (both ways)\n",
              documents, static_cast<unsigned long long>(idle),
              static_cast<unsigned long long>(one_write));
}

void Cascade(int keys) {
  internal::TempDir dir;
  std::unique_ptr<Replica> a = MustOpen(dir.path() + "/a");
  std::unique_ptr<Replica> b = MustOpen(dir.path() + "/b");
  TrustEachOther(*a, *b);
  std::vector<uint64_t> bytes;
  for (int i = 0; i < keys; ++i) {
    Must(a->document("d").Put(absl::StrCat("/k", i), std::to_string(i)), "put");
    bytes.push_back(SyncBytes(*a, *b));
  }
  const uint64_t first = bytes.front();
  uint64_t total = 0;
  for (uint64_t n : bytes) total += n;
  std::sort(bytes.begin(), bytes.end());
  auto at = [&](double q) {
    return static_cast<unsigned long long>(bytes[static_cast<size_t>(q * static_cast<double>(bytes.size() - 1))]);
  };
  std::printf("one-write sessions over a %d-key document: first %llu B, median %llu B, p90 %llu B, "
              "largest %llu B, mean %llu B; author's log at the end %llu B\n",
              keys, static_cast<unsigned long long>(first), at(0.5), at(0.9), at(1.0),
              static_cast<unsigned long long>(total / static_cast<uint64_t>(keys)),
              static_cast<unsigned long long>(LogBytes(*a, dir.path() + "/a.bundle")));
}

}  // namespace
}  // namespace edgesync

int main(int argc, char** argv) {
  const int writes = argc > 1 ? std::atoi(argv[1]) : 3000;
  const int documents = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int keys = argc > 3 ? std::atoi(argv[3]) : 979;
  edgesync::Relay(writes);
  edgesync::ManyDocuments(documents);
  edgesync::Cascade(keys);
  return 0;
}
