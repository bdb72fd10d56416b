// The demo subcommand: a small fleet of gossip nodes in this process, each
// with its own replica in a fresh temporary directory, talking encrypted TCP
// over loopback. It writes on several nodes, cuts one node off, keeps
// writing on both sides, heals the cut and shows that every node ends with
// the same state hash for every document.
//
// Correctness never rests on a sleep: every "converged" is a poll of the
// replicas' state hashes against a deadline. Sleeps only pace the writes and
// the progress lines, and each of them is a wait for SIGINT/SIGTERM, so an
// interrupted demo still stops its nodes and removes its directory.

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "edgesync/node.h"
#include "edgesync/replica.h"
#include "tools/cli.h"

namespace edgesync::cli {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kWriteEveryMs = 50;       // pace of the random writes
constexpr int64_t kProgressEveryMs = 1000;  // a progress line this often
constexpr int64_t kPollMs = 10;             // digest polls while waiting
constexpr int64_t kLinkDeadlineMs = 15000;
constexpr int64_t kConvergeDeadlineMs = 30000;
constexpr uint64_t kSyncIntervalMs = 500;
constexpr uint64_t kReconnectMaxMs = 2000;

// The shared documents, sorted.
const std::vector<std::string>& Documents() {
  static const std::vector<std::string> docs = {"config", "fleet/robot-7", "plant/pump-1",
                                                "plant/pump-2"};
  return docs;
}

// One kind of random write: `op` at `path` of `doc` with one of `values`
// (none for del), drawn with probability weight / (sum of weights). The
// paths of the scripted concurrent writes (/mode, /starts, /position) are not
// among them, so their outcome is exactly what the demo says it is.
struct WriteKind {
  int weight;
  const char* doc;
  const char* op;
  const char* path;
  std::vector<std::string> values;
};

const std::vector<WriteKind>& WriteKinds() {
  static const std::vector<std::string> rpm = {"1200", "1350", "1450", "1600", "1750"};
  static const std::vector<std::string> alarms = {R"("overheat")", R"("low-pressure")",
                                                  R"("vibration")"};
  static const std::vector<WriteKind> kinds = {
      {12, "plant/pump-1", "put", "/rpm", rpm},
      {6, "plant/pump-1", "put", "/status", {R"("running")", R"("idle")", R"("service")"}},
      {6, "plant/pump-1", "incr", "/cycles", {"1"}},
      {6, "plant/pump-1", "add", "/alarms", alarms},
      {2, "plant/pump-1", "del", "/alarms", {}},
      {12, "plant/pump-2", "put", "/rpm", rpm},
      {6, "plant/pump-2", "incr", "/cycles", {"1"}},
      {6, "plant/pump-2", "add", "/alarms", alarms},
      {2, "plant/pump-2", "del", "/alarms", {}},
      {10, "fleet/robot-7", "put", "/battery", {"87.5", "64.0", "41.5", "23.0"}},
      {6, "fleet/robot-7", "incr", "/missions", {"1"}},
      {6, "fleet/robot-7", "add", "/tags", {R"("dock")", R"("lidar")", R"("night")"}},
      {2, "fleet/robot-7", "del", "/tags", {}},
      {6, "config", "put", "/sample_ms", {"100", "250", "500", "1000"}},
      {4, "config", "add", "/sites", {R"("north")", R"("south")", R"("east")"}},
      {1, "config", "del", "/sites", {}},
  };
  return kinds;
}

struct DemoArgs {
  int nodes = 5;
  int seconds = 8;
};

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

std::string Seconds(int64_t ms) {
  if (ms < 1000) return absl::StrCat(ms, " ms");
  return absl::StrFormat("%.2f s", static_cast<double>(ms) / 1000);
}

std::string Bytes(uint64_t n) {
  if (n < 1024) return absl::StrCat(n, " B");
  if (n < (uint64_t{1} << 20)) return absl::StrFormat("%.1f KiB", static_cast<double>(n) / 1024);
  return absl::StrFormat("%.1f MiB", static_cast<double>(n) / (1 << 20));
}

// Prints `text` as a line, without trailing blanks, and flushes it.
void Line(absl::string_view text) {
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::cout << text << std::endl;
}

void Add(NodeStats& into, const NodeStats& s) {
  into.batches_applied += s.batches_applied;
  into.pushes_sent += s.pushes_sent;
  into.rounds_synced += s.rounds_synced;
  into.rounds_mismatched += s.rounds_mismatched;
  into.bytes_sent += s.bytes_sent;
  into.bytes_received += s.bytes_received;
  into.peers_connected += s.peers_connected;
  into.sessions_failed += s.sessions_failed;
}

absl::Status Interrupted() { return absl::CancelledError("interrupted"); }

// A directory made with mkdtemp under $TMPDIR (or the system's temporary
// directory), removed with its contents by the destructor.
class ScratchDir {
 public:
  static absl::StatusOr<std::unique_ptr<ScratchDir>> Make() {
    std::error_code error;
    std::filesystem::path base = std::filesystem::temp_directory_path(error);
    if (error) {
      return absl::UnavailableError(absl::StrCat("no temporary directory: ", error.message()));
    }
    std::string tmpl = (base / "edgesync-demo-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot create a directory in ", base.string()));
    }
    return std::unique_ptr<ScratchDir>(new ScratchDir(tmpl));
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// One write of the demo, as printed.
struct Write {
  size_t node = 0;
  std::string doc;
  std::string op;  // put incr add del
  std::string path;
  std::string value;
};

class Demo {
 public:
  explicit Demo(const DemoArgs& a)
      : n_(static_cast<size_t>(a.nodes)),
        phase_ms_(int64_t{a.seconds} * 1000 / 2),
        cut_(n_ - 1),
        writes_(n_, 0),
        earlier_(n_) {}

  ~Demo() { StopAll(); }

  absl::Status Run() {
    const Clock::time_point start = Clock::now();
    absl::StatusOr<std::unique_ptr<ScratchDir>> dir = ScratchDir::Make();
    if (!dir.ok()) return dir.status();
    dir_ = *std::move(dir);
    Line(absl::StrCat(
        "edgesync demo: ", n_,
        " nodes in this process, each with its own replica in a temporary\n"
        "directory, gossiping over encrypted TCP on 127.0.0.1; all trust each other."));
    if (absl::Status s = Start(); !s.ok()) return s;
    if (absl::Status s = Connected(); !s.ok()) return s;
    if (absl::Status s = Cut(); !s.ok()) return s;
    if (absl::Status s = Partitioned(); !s.ok()) return s;
    if (absl::Status s = Heal(); !s.ok()) return s;
    if (absl::Status s = Result(); !s.ok()) return s;
    Line(absl::StrCat("\ndone in ", Seconds(MsSince(start)),
                      "; the temporary directory is removed."));
    return absl::OkStatus();
  }

 private:
  std::string Name(size_t i) const { return absl::StrCat("n", i); }
  std::string Address(size_t i) const { return absl::StrCat("127.0.0.1:", nodes_[i]->port()); }

  absl::StatusOr<std::unique_ptr<Node>> StartNode(size_t i, const std::vector<std::string>& peers) {
    NodeOptions o;
    o.listen = "127.0.0.1:0";
    o.peers = peers;
    o.sync_interval_ms = kSyncIntervalMs;
    o.reconnect_max_ms = kReconnectMaxMs;
    return Node::Start(*replicas_[i], o);
  }

  // ---------------------------------------------------------------- phases

  absl::Status Start() {
    Line(absl::StrCat("\n== 1. start ", n_, " nodes in a line: node i dials node i-1 (",
                      "sync round every ", kSyncIntervalMs, " ms)"));
    ReplicaOptions ro;
    ro.durability = Durability::kFast;
    for (size_t i = 0; i < n_; ++i) {
      absl::StatusOr<std::unique_ptr<Replica>> r =
          Replica::Open(absl::StrCat(dir_->path(), "/", Name(i)), ro);
      if (!r.ok()) return r.status();
      replicas_.push_back(*std::move(r));
    }
    for (auto& r : replicas_) {
      for (auto& other : replicas_) {
        if (absl::Status s = r->Trust(other->public_key_hex()); !s.ok()) return s;
      }
    }
    const Clock::time_point t0 = Clock::now();
    Line("  node  key                  listening        dials");
    for (size_t i = 0; i < n_; ++i) {
      std::vector<std::string> peers;
      if (i > 0) peers.push_back(Address(i - 1));
      absl::StatusOr<std::unique_ptr<Node>> node = StartNode(i, peers);
      if (!node.ok()) return node.status();
      nodes_.push_back(*std::move(node));
      Line(absl::StrFormat("  %-4s  %s...  %-15s  %s", Name(i),
                           replicas_[i]->public_key_hex().substr(0, 16), Address(i),
                           i > 0 ? Name(i - 1) : "-"));
    }
    // Each node i > 0 is connected to node i-1 once it lists i-1's key as a
    // connected peer.
    for (;;) {
      bool all = true;
      for (size_t i = 1; i < n_ && all; ++i) all = ConnectedTo(i, i - 1);
      if (all) break;
      if (MsSince(t0) > kLinkDeadlineMs) {
        return absl::DeadlineExceededError(
            absl::StrCat("the line did not come up within ", Seconds(kLinkDeadlineMs)));
      }
      if (WaitForStopSignal(kPollMs) != 0) return Interrupted();
    }
    Line(absl::StrCat("  the line is up after ", Seconds(MsSince(t0)),
                      "; peer exchange then adds links: ", Links(), " now"));
    return absl::OkStatus();
  }

  absl::Status Connected() {
    Line(absl::StrCat("\n== 2. write on every node for ", Seconds(phase_ms_),
                      ": puts, counter increments, set adds, deletes"));
    // Values the concurrent writes of phase 4 will meet on.
    for (const Write& w : {Write{0, "fleet/robot-7", "put", "/position", R"({"x":1,"y":2})"},
                           Write{0, "config", "put", "/mode", R"("normal")"}}) {
      if (absl::Status s = Do(w, /*print=*/true); !s.ok()) return s;
    }
    auto anyone = [this](std::mt19937& rng) {
      return std::uniform_int_distribution<size_t>(0, n_ - 1)(rng);
    };
    if (absl::Status s = WriteFor(phase_ms_, anyone); !s.ok()) return s;
    std::vector<size_t> all(n_);
    for (size_t i = 0; i < n_; ++i) all[i] = i;
    absl::StatusOr<int64_t> ms = WaitConverged(all);
    if (!ms.ok()) return ms.status();
    Line(absl::StrCat("  all ", n_, " nodes hold equal state hashes ", Seconds(*ms),
                      " after the last write"));
    return absl::OkStatus();
  }

  absl::Status Cut() {
    Line(absl::StrCat("\n== 3. cut ", Name(cut_),
                      " off: stop its node; its replica stays open and keeps taking writes"));
    const Clock::time_point t0 = Clock::now();
    old_address_ = Address(cut_);
    nodes_[cut_]->Stop();
    Add(earlier_[cut_], nodes_[cut_]->stats());
    nodes_[cut_].reset();
    Line(absl::StrCat("  ", Name(cut_), "'s node stopped in ", Seconds(MsSince(t0)), "; ",
                      old_address_, " is closed, its peers keep redialling it"));
    return absl::OkStatus();
  }

  absl::Status Partitioned() {
    Line(absl::StrCat("\n== 4. write on both sides for ", Seconds(phase_ms_), " (", Name(cut_),
                      " takes a third of the writes)"));
    Line("  concurrent writes that meet when the cut heals:");
    const size_t other = cut_ > 1 ? 1 : 0;
    const std::vector<Write> scripted = {
        {0, "config", "put", "/mode", R"("boost")"},
        {cut_, "config", "put", "/mode", R"("eco")"},
        {0, "plant/pump-1", "incr", "/starts", "10"},
        {cut_, "plant/pump-1", "incr", "/starts", "100"},
        {other, "fleet/robot-7", "del", "/position", ""},
        {cut_, "fleet/robot-7", "put", "/position/x", "42"},
    };
    for (const Write& w : scripted) {
      if (absl::Status s = Do(w, /*print=*/true); !s.ok()) return s;
    }
    auto a_third_on_the_cut_node = [this](std::mt19937& rng) {
      if (std::uniform_int_distribution<int>(0, 2)(rng) == 0) return cut_;
      return std::uniform_int_distribution<size_t>(0, n_ - 2)(rng);
    };
    if (absl::Status s = WriteFor(phase_ms_, a_third_on_the_cut_node); !s.ok()) return s;
    std::vector<size_t> rest;
    for (size_t i = 0; i < n_; ++i) {
      if (i != cut_) rest.push_back(i);
    }
    absl::StatusOr<int64_t> ms = WaitConverged(rest);
    if (!ms.ok()) return ms.status();
    Line(absl::StrCat("  the ", rest.size(), " connected nodes agree ", Seconds(*ms),
                      " after the last write; ", Name(cut_), " differs:"));
    return HashTable(/*all_equal_required=*/false).status();
  }

  absl::Status Heal() {
    Line(absl::StrCat("\n== 5. heal: a new node for ", Name(cut_), " on a new port dials ",
                      Name(cut_ - 1)));
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<std::unique_ptr<Node>> node = StartNode(cut_, {});
    if (!node.ok()) return node.status();
    nodes_[cut_] = *std::move(node);
    if (absl::Status s = nodes_[cut_]->AddPeer(Address(cut_ - 1)); !s.ok()) return s;
    Line(absl::StrCat("  ", Name(cut_), " listening on ", Address(cut_), " (was ", old_address_,
                      ")"));
    std::vector<size_t> all(n_);
    for (size_t i = 0; i < n_; ++i) all[i] = i;
    absl::StatusOr<int64_t> ms = WaitConverged(all);
    if (!ms.ok()) return ms.status();
    Line(absl::StrCat("  converged ", Seconds(MsSince(t0)),
                      " after healing: all nodes hold equal state hashes"));
    return absl::OkStatus();
  }

  absl::Status Result() {
    Line("\n== 6. result");
    StopAll();
    Line("  node  writes  batches applied  pushes  rounds synced  bytes sent  bytes received");
    NodeStats total;
    uint64_t writes = 0;
    for (size_t i = 0; i < n_; ++i) {
      const NodeStats& s = earlier_[i];
      Line(absl::StrFormat("  %-4s  %6d  %15d  %6d  %13d  %10s  %14s", Name(i), writes_[i],
                           s.batches_applied, s.pushes_sent, s.rounds_synced, Bytes(s.bytes_sent),
                           Bytes(s.bytes_received)));
      Add(total, s);
      writes += writes_[i];
    }
    Line(absl::StrFormat("  %-4s  %6d  %15d  %6d  %13d  %10s  %14s", "all", writes,
                         total.batches_applied, total.pushes_sent, total.rounds_synced,
                         Bytes(total.bytes_sent), Bytes(total.bytes_received)));
    Line("\n  values (on n0):");
    for (const std::string& doc : Documents()) {
      absl::StatusOr<std::string> value = replicas_[0]->document(doc).Get();
      if (!value.ok()) return value.status();
      std::string text = *value;
      if (text.size() > 100) text = absl::StrCat(text.substr(0, 97), "...");
      Line(absl::StrFormat("  %-13s  %s", doc, text));
    }
    absl::StatusOr<std::string> conflicts = replicas_[0]->document("config").Conflicts("/mode");
    if (!conflicts.ok()) return conflicts.status();
    Line(absl::StrCat(
        "  config /mode: one of the concurrent values won on every node, the other is a\n"
        "    conflict: ",
        *conflicts,
        "\n  plant/pump-1 /starts counts both sides' increments; fleet/robot-7 /position\n"
        "    keeps the x written concurrently with its deletion (update beats delete)"));
    Line("");
    absl::StatusOr<bool> equal = HashTable(/*all_equal_required=*/true);
    if (!equal.ok()) return equal.status();
    if (!*equal) return absl::InternalError("the nodes ended with different state hashes");
    Line(absl::StrCat("  converged: all ", n_, " nodes hold equal state hashes for all ",
                      Documents().size(), " documents"));
    return absl::OkStatus();
  }

  // ---------------------------------------------------------------- writes

  // Writes every kWriteEveryMs on the node `pick` chooses, for `ms`, with a
  // progress line every kProgressEveryMs.
  template <typename Pick>
  absl::Status WriteFor(int64_t ms, Pick pick) {
    Line(
        "  time     writes  batches applied  pushes  rounds synced  bytes sent  bytes received  "
        "links");
    const Clock::time_point t0 = Clock::now();
    int64_t next_write = 0;
    int64_t next_progress = kProgressEveryMs;
    for (;;) {
      const int64_t now = MsSince(t0);
      if (now >= next_progress || now >= ms) {
        Progress(std::min(now, ms));
        next_progress += kProgressEveryMs;
        if (now >= ms) return absl::OkStatus();
      }
      if (now >= next_write) {
        if (absl::Status s = Do(RandomWrite(pick(rng_)), /*print=*/false); !s.ok()) return s;
        next_write += kWriteEveryMs;
        continue;
      }
      const int64_t wait = std::min({next_write, next_progress, ms}) - now;
      if (WaitForStopSignal(std::max<int64_t>(wait, 1)) != 0) return Interrupted();
    }
  }

  Write RandomWrite(size_t node) {
    int total = 0;
    for (const WriteKind& k : WriteKinds()) total += k.weight;
    int pick = std::uniform_int_distribution<int>(0, total - 1)(rng_);
    for (const WriteKind& k : WriteKinds()) {
      if (pick >= k.weight) {
        pick -= k.weight;
        continue;
      }
      std::string value;
      if (!k.values.empty()) {
        value = k.values[std::uniform_int_distribution<size_t>(0, k.values.size() - 1)(rng_)];
      }
      return Write{node, k.doc, k.op, k.path, value};
    }
    return Write{node, "config", "put", "/sample_ms", "100"};  // not reached
  }

  absl::Status Do(const Write& w, bool print) {
    Document d = replicas_[w.node]->document(w.doc);
    absl::Status s;
    if (w.op == "put") {
      s = d.Put(w.path, w.value);
    } else if (w.op == "incr") {
      s = d.CounterAdd(w.path, std::stoll(w.value));
    } else if (w.op == "add") {
      s = d.SetAdd(w.path, w.value);
    } else {
      s = d.Delete(w.path);
    }
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(Name(w.node), " ", w.op, " ", w.doc, " ", w.path,
                                                 ": ", s.message()));
    }
    ++writes_[w.node];
    if (print) {
      Line(absl::StrFormat("    %-4s  %-13s  %-4s  %-11s  %s", Name(w.node), w.doc, w.op, w.path,
                           w.value));
    }
    return absl::OkStatus();
  }

  // ---------------------------------------------------------------- views

  NodeStats Totals() const {
    NodeStats total;
    for (size_t i = 0; i < n_; ++i) {
      Add(total, earlier_[i]);
      if (nodes_[i]) Add(total, nodes_[i]->stats());
    }
    return total;
  }

  // Connections between live nodes (each is counted at both ends).
  uint64_t Links() const {
    uint64_t ends = 0;
    for (const auto& node : nodes_) {
      if (node) ends += node->stats().peers_connected;
    }
    return ends / 2;
  }

  bool ConnectedTo(size_t i, size_t j) const {
    for (const NodePeer& p : nodes_[i]->peers()) {
      if (p.connected && p.key == replicas_[j]->public_key_hex()) return true;
    }
    return false;
  }

  void Progress(int64_t ms) {
    uint64_t writes = 0;
    for (uint64_t w : writes_) writes += w;
    const NodeStats t = Totals();
    Line(absl::StrFormat("  %5.1f s  %6d  %15d  %6d  %13d  %10s  %14s  %5d",
                         static_cast<double>(ms) / 1000, writes, t.batches_applied, t.pushes_sent,
                         t.rounds_synced, Bytes(t.bytes_sent), Bytes(t.bytes_received), Links()));
  }

  // digests[d][i]: the state hash of document d on node i.
  absl::StatusOr<std::vector<std::vector<std::string>>> Digests() const {
    std::vector<std::vector<std::string>> out;
    for (const std::string& doc : Documents()) {
      std::vector<std::string> row;
      for (const auto& r : replicas_) {
        absl::StatusOr<std::string> digest = r->document(doc).Digest();
        if (!digest.ok()) return digest.status();
        row.push_back(*std::move(digest));
      }
      out.push_back(std::move(row));
    }
    return out;
  }

  // Polls the state hashes of the nodes in `which` until they are equal for
  // every document; returns the milliseconds it took.
  absl::StatusOr<int64_t> WaitConverged(const std::vector<size_t>& which) const {
    const Clock::time_point t0 = Clock::now();
    for (;;) {
      absl::StatusOr<std::vector<std::vector<std::string>>> digests = Digests();
      if (!digests.ok()) return digests.status();
      std::vector<std::string> differ;
      for (size_t d = 0; d < digests->size(); ++d) {
        for (size_t i : which) {
          if ((*digests)[d][i] != (*digests)[d][which.front()]) {
            differ.push_back(Documents()[d]);
            break;
          }
        }
      }
      if (differ.empty()) return MsSince(t0);
      if (MsSince(t0) > kConvergeDeadlineMs) {
        return absl::DeadlineExceededError(absl::StrCat("no convergence within ",
                                                        Seconds(kConvergeDeadlineMs), " on ",
                                                        absl::StrJoin(differ, ", ")));
      }
      if (WaitForStopSignal(kPollMs) != 0) return Interrupted();
    }
  }

  // Prints each document's state hash on every node (a prefix of it) and
  // whether they are all equal; returns whether every row is.
  absl::StatusOr<bool> HashTable(bool all_equal_required) const {
    absl::StatusOr<std::vector<std::vector<std::string>>> digests = Digests();
    if (!digests.ok()) return digests.status();
    const size_t hex = n_ <= 6 ? 12 : 8;
    Line(absl::StrCat("  state hashes (Document::Digest, first ", hex, " of 64 hex digits):"));
    std::string header = absl::StrFormat("  %-13s", "document");
    for (size_t i = 0; i < n_; ++i) {
      absl::StrAppend(&header, absl::StrFormat("  %-*s", static_cast<int>(hex), Name(i)));
    }
    Line(header);
    bool all = true;
    for (size_t d = 0; d < digests->size(); ++d) {
      const std::vector<std::string>& row = (*digests)[d];
      std::string line = absl::StrFormat("  %-13s", Documents()[d]);
      bool equal = true;
      for (const std::string& digest : row) {
        absl::StrAppend(&line, "  ", digest.substr(0, hex));
        equal = equal && digest == row.front();
      }
      absl::StrAppend(&line, equal ? "  equal" : (all_equal_required ? "  DIFFERENT" : "  differ"));
      Line(line);
      all = all && equal;
    }
    return all;
  }

  // Stops the live nodes in parallel (each waits up to a second for its
  // connections to flush), keeping their final counters.
  void StopAll() {
    std::vector<std::thread> stoppers;
    for (auto& node : nodes_) {
      if (node) stoppers.emplace_back([&node] { node->Stop(); });
    }
    for (std::thread& t : stoppers) t.join();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i]) continue;
      Add(earlier_[i], nodes_[i]->stats());
      nodes_[i].reset();
    }
  }

  const size_t n_;
  const int64_t phase_ms_;
  const size_t cut_;  // the node cut off and healed: the last of the line
  std::mt19937 rng_{20240607};
  std::unique_ptr<ScratchDir> dir_;  // declared first of the owners: removed last
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<std::unique_ptr<Node>> nodes_;  // null while cut off
  std::vector<uint64_t> writes_;
  std::vector<NodeStats> earlier_;  // counters of stopped nodes
  std::string old_address_;
};

int RunDemo(const DemoArgs& a) {
  BlockStopSignals();  // before any node thread exists
  absl::Status s;
  {
    Demo demo(a);
    s = demo.Run();
  }
  if (!s.ok()) return Fail("demo", s);
  return kExitOk;
}

}  // namespace

void AddDemoCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<DemoArgs>();
  CLI::App* demo = app.add_subcommand(
      "demo",
      "Run a fleet of gossip nodes in this process, each with its own replica in a\n"
      "temporary directory, over encrypted TCP on 127.0.0.1: connect them in a\n"
      "line, write on several of them, cut the last one off, keep writing on both\n"
      "sides, heal, and print the traffic, the time to converge and each node's\n"
      "state hash per document. Exits 0 only if all nodes end with equal hashes.");
  demo->add_option("--nodes", a->nodes, "how many nodes")
      ->transform(DecimalInt64())
      ->check(CLI::Range(2, 32))
      ->capture_default_str();
  demo->add_option("--seconds", a->seconds,
                   "the two write phases together last this long (the whole run\n"
                   "takes a few seconds more)")
      ->transform(DecimalInt64())
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  demo->callback([a, exit_code] { *exit_code = RunDemo(*a); });
}

}  // namespace edgesync::cli
