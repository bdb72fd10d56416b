// File: tests/node/node_process.cc
//
// A node in its own process, for tests/node/kill9_test.cc and
// tests/node/bomb_test.cc (LMDB must not cross fork(), so the tests exec
// this program). It opens a replica
// directory (default options: durable commits), starts an edgesync::Node
// and runs until killed. Lines on stdout, each flushed at once:
//
//   key <hex>                 the replica's public key, once open
//   port <n>                  the node listens (or 0: dial-only)
//   error <status>            Open or Node::Start failed; exit 1
//   ack <path>                a write whose Commit returned OK
//   writes done <n>           all --writes committed
//   stats applied=<n> received=<n> peers=<n> acked=<n> digest=<hex>
//         untrusted=<n> malformed=<n> invalid=<n> failed=<n> closed=<n>
//                             (one line) every --report-ms, from a thread
//                             of its own (so a writer blocked on the store
//                             does not delay it): batches applied and bytes
//                             received by the node since this process
//                             started (a snapshot at most ~50 ms old),
//                             connected peers, commits acknowledged so far,
//                             the digest of --doc; the replica's batches
//                             rejected for an untrusted author and as
//                             malformed (current); the node's invalid
//                             batches, failed sessions and closed
//                             connections (the snapshot)
//
// Flags:
//   --dir DIR                 replica directory (required)
//   --listen HOST:PORT        accept peers (default: dial-only)
//   --peer HOST:PORT          dial (repeatable)
//   --trust HEX               trust this key before the node starts
//                             (repeatable)
//   --doc ID                  document written and reported (default "k9")
//   --writes N                commits to make, one after the other (default 0)
//   --puts-per-commit N       puts in each commit (default 1)
//   --value-bytes N           size of each value (default 64)
//   --prefix P                paths are /<P><i>_<j> (default "w")
//   --report-ms N             default 20
//   --sync-interval-ms N      default 200
//   --max-message-bytes N     NodeOptions::max_message_bytes (default: its
//                             default)

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "edgesync/node.h"
#include "edgesync/replica.h"

namespace edgesync::testing {
namespace {

// One whole line at a time (the writer and the reporter both print).
void Say(const std::string& line) {
  static std::mutex mu;
  std::string out = line + "\n";
  std::lock_guard<std::mutex> lock(mu);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "node_process: %s\n", why.c_str());
  return 2;
}

struct Flags {
  std::string dir;
  std::string listen;
  std::vector<std::string> peers;
  std::vector<std::string> trust;
  std::string doc = "k9";
  uint64_t writes = 0;
  uint64_t puts_per_commit = 1;
  uint64_t value_bytes = 64;
  std::string prefix = "w";
  uint64_t report_ms = 20;
  uint64_t sync_interval_ms = 200;
  uint64_t max_message_bytes = 0;
};

bool ParseFlags(int argc, char** argv, Flags* f, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (i + 1 >= argc) {
      *error = absl::StrCat(name, " needs a value");
      return false;
    }
    const std::string value = argv[++i];
    uint64_t* number = nullptr;
    if (name == "--dir") {
      f->dir = value;
    } else if (name == "--listen") {
      f->listen = value;
    } else if (name == "--peer") {
      f->peers.push_back(value);
    } else if (name == "--trust") {
      f->trust.push_back(value);
    } else if (name == "--doc") {
      f->doc = value;
    } else if (name == "--prefix") {
      f->prefix = value;
    } else if (name == "--writes") {
      number = &f->writes;
    } else if (name == "--puts-per-commit") {
      number = &f->puts_per_commit;
    } else if (name == "--value-bytes") {
      number = &f->value_bytes;
    } else if (name == "--report-ms") {
      number = &f->report_ms;
    } else if (name == "--sync-interval-ms") {
      number = &f->sync_interval_ms;
    } else if (name == "--max-message-bytes") {
      number = &f->max_message_bytes;
    } else {
      *error = absl::StrCat("unknown flag ", name);
      return false;
    }
    if (number != nullptr && !absl::SimpleAtoi(value, number)) {
      *error = absl::StrCat(name, " wants a number, not \"", value, "\"");
      return false;
    }
  }
  if (f->dir.empty()) {
    *error = "--dir is required";
    return false;
  }
  return true;
}

// A JSON string of `bytes` characters between the quotes: the tag, then
// pseudo-random letters and digits (seeded by the tag), so that batches do
// not compress to nothing and a backlog is as large on the wire as on disk.
std::string Value(const std::string& tag, uint64_t bytes) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  std::string v = tag;
  uint64_t x = std::hash<std::string>()(tag) | 1;
  while (v.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v.push_back(kAlphabet[x & 63]);
  }
  return absl::StrCat("\"", v, "\"");
}

int Run(const Flags& f) {
  absl::StatusOr<std::unique_ptr<Replica>> opened = Replica::Open(f.dir);
  if (!opened.ok()) {
    Say(absl::StrCat("error ", opened.status().ToString()));
    return 1;
  }
  Replica& replica = **opened;
  for (const std::string& key : f.trust) {
    if (absl::Status s = replica.Trust(key); !s.ok()) {
      Say(absl::StrCat("error ", s.ToString()));
      return 1;
    }
  }
  Say(absl::StrCat("key ", replica.public_key_hex()));

  NodeOptions o;
  o.listen = f.listen;
  o.peers = f.peers;
  o.sync_interval_ms = f.sync_interval_ms;
  o.reconnect_max_ms = 1000;
  if (f.max_message_bytes != 0) o.max_message_bytes = f.max_message_bytes;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(replica, o);
  if (!node.ok()) {
    Say(absl::StrCat("error ", node.status().ToString()));
    return 1;
  }
  Say(absl::StrCat("port ", (*node)->port()));

  Document doc = replica.document(f.doc);
  std::atomic<uint64_t> acked{0};
  // The reporter runs until the process is killed (it never returns).
  std::thread reporter([&] {
    while (true) {
      const NodeStats s = (*node)->stats();
      const ReplicaStats r = replica.stats();
      absl::StatusOr<std::string> digest = doc.Digest();
      Say(absl::StrCat("stats applied=", s.batches_applied, " received=", s.bytes_received,
                       " peers=", s.peers_connected, " acked=", acked.load(),
                       " digest=", digest.ok() ? *digest : "error",
                       " untrusted=", r.rejected_untrusted, " malformed=", r.rejected_malformed,
                       " invalid=", s.batches_invalid, " failed=", s.sessions_failed,
                       " closed=", s.connections_closed));
      std::this_thread::sleep_for(std::chrono::milliseconds(f.report_ms));
    }
  });
  reporter.detach();
  for (uint64_t i = 0; i < f.writes; ++i) {
    Transaction t = doc.Begin();
    std::vector<std::string> paths;
    for (uint64_t j = 0; j < f.puts_per_commit; ++j) {
      paths.push_back(absl::StrCat("/", f.prefix, i, "_", j));
      if (absl::Status s = t.Put(paths.back(), Value(paths.back(), f.value_bytes)); !s.ok()) {
        Say(absl::StrCat("error ", s.ToString()));
        std::_Exit(1);
      }
    }
    absl::StatusOr<CommitInfo> c = t.Commit();
    if (!c.ok()) {
      Say(absl::StrCat("error ", c.status().ToString()));
      std::_Exit(1);
    }
    // Acknowledged: only now is it reported.
    for (const std::string& p : paths) Say(absl::StrCat("ack ", p));
    ++acked;
  }
  Say(absl::StrCat("writes done ", f.writes));
  // Runs (and reports) until killed.
  while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace
}  // namespace edgesync::testing

int main(int argc, char** argv) {
  edgesync::testing::Flags flags;
  std::string error;
  if (!edgesync::testing::ParseFlags(argc, argv, &flags, &error)) {
    return edgesync::testing::Usage(error);
  }
  return edgesync::testing::Run(flags);
}
