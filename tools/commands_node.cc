// The subcommands that keep running or look at a replica as a whole: node
// (the gossip node of a gateway), watch (the change feed) and status.
//
// node and watch run until SIGINT or SIGTERM. They block both signals before
// they start any thread and collect them with sigwait/sigtimedwait in the
// main thread, so no signal handler exists and the stop path is ordinary
// code: Node::Stop() closes the connections and joins the node's thread.
//
// watch reads the change feed (the `changes` table every commit and every
// applied batch appends to, in whichever process made it) in read-only
// transactions every 50 ms, so it sees the changes of a node process and of
// `edgesync put` alike.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "crdt/hlc.h"
#include "edgesync/node.h"
#include "lib/replica/replica_core.h"
#include "lib/store/replica_store.h"
#include "tools/cli.h"

namespace edgesync::cli {

namespace {

using Json = nlohmann::json;

constexpr int64_t kWatchPollMs = 50;
constexpr int64_t kPeerLogPollMs = 500;

struct NodeArgs {
  std::string dir;
  std::string listen;
  std::vector<std::string> peers;
  std::vector<std::string> interest;
  uint32_t fanout = NodeOptions().fanout;
  uint64_t sync_interval_ms = NodeOptions().sync_interval_ms;
  uint64_t reconnect_max_ms = NodeOptions().reconnect_max_ms;
  bool log_peers = false;
  std::string durability = "durable";
  std::string prefix;  // watch
};

// "host:port" of `listen` with the port the node actually bound.
std::string BoundAddress(const std::string& listen, uint16_t port) {
  const size_t colon = listen.rfind(':');
  return absl::StrCat(colon == std::string::npos ? listen : listen.substr(0, colon), ":", port);
}

std::string PeerName(const NodePeer& p) {
  std::string name = p.address.empty() ? "(inbound)" : p.address;
  if (!p.key.empty()) absl::StrAppend(&name, " key ", p.key);
  return name;
}

// Prints a line for every peer whose connection came up or went down since
// `before`, and for each new reason a dial failed.
void LogPeerChanges(const std::vector<NodePeer>& before, const std::vector<NodePeer>& now) {
  auto previous = [&before](const NodePeer& p) -> const NodePeer* {
    for (const NodePeer& b : before) {
      if (b.address == p.address && b.key == p.key) return &b;
    }
    return nullptr;
  };
  for (const NodePeer& p : now) {
    const NodePeer* was = previous(p);
    const bool was_connected = was != nullptr && was->connected;
    if (p.connected && !was_connected) {
      std::cout << "peer connected: " << PeerName(p) << std::endl;
    } else if (!p.connected && was_connected) {
      std::cout << "peer disconnected: " << PeerName(p)
                << (p.last_error.empty() ? "" : absl::StrCat(" (", p.last_error, ")")) << std::endl;
    } else if (!p.connected && !p.last_error.empty() &&
               (was == nullptr || was->last_error != p.last_error)) {
      std::cout << "peer unreachable: " << PeerName(p) << " (" << p.last_error << ")" << std::endl;
    }
    if (p.clock_skewed && (was == nullptr || !was->clock_skewed)) {
      std::cout << "peer clock skewed: " << PeerName(p) << " is " << p.clock_offset_ms
                << " ms off this replica's clock (beyond future_skew_max_ms; one of the two"
                << " clocks is wrong)" << std::endl;
    }
  }
}

// Prints a line when the replica's own key starts or stops being held back
// (ReplicaStats::own_seqs_missing, own_key_equivocated).
void LogOwnKeyChanges(const ReplicaStats& before, const ReplicaStats& now, const std::string& dir) {
  if (now.own_key_equivocated != 0 && before.own_key_equivocated == 0) {
    std::cout << "own key equivocated: a peer holds another batch signed with this replica's key "
                 "for one of its seqs (the store was restored or copied and wrote before it met "
                 "a peer); commits refused: run edgesync rekey "
              << dir << " (edgesync status " << dir << " names the document)" << std::endl;
  }
  if (now.own_seqs_missing != 0 && before.own_seqs_missing == 0) {
    std::cout << "own seqs missing: peers hold " << now.own_seqs_missing
              << " seqs of this replica's key that its store lacks (restored from an earlier "
                 "copy?); commits on their documents refused until sessions fetch them back"
              << std::endl;
  } else if (now.own_seqs_missing == 0 && before.own_seqs_missing != 0) {
    std::cout << "own seqs recovered: " << now.own_seqs_recovered
              << " fetched back from peers; commits resume" << std::endl;
  }
}

// "" if `address` is HOST:PORT with a port in [port_min, 65535], else why not.
std::string CheckAddress(absl::string_view flag, const std::string& address, int port_min) {
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0 &&
      absl::SimpleAtoi(absl::string_view(address).substr(colon + 1), &port) && port >= port_min &&
      port <= 65535) {
    return "";
  }
  return absl::StrCat(flag, " \"", address, "\" is not HOST:PORT (port ", port_min, " to 65535)");
}

int RunNode(const NodeArgs& a) {
  if (std::string why = CheckAddress("--listen", a.listen, 0); !why.empty()) {
    return Fail("node", why);
  }
  for (const std::string& peer : a.peers) {
    if (std::string why = CheckAddress("--peer", peer, 1); !why.empty()) return Fail("node", why);
  }
  BlockStopSignals();  // before the node's thread exists
  ReplicaOptions replica_options;
  replica_options.durability = a.durability == "fast" ? Durability::kFast : Durability::kDurable;
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir, replica_options);
  if (!r.ok()) return Fail("node", r.status());
  NodeOptions options;
  options.listen = a.listen;
  options.peers = a.peers;
  if (!a.interest.empty()) options.interest = a.interest;
  options.fanout = a.fanout;
  options.sync_interval_ms = a.sync_interval_ms;
  options.reconnect_max_ms = a.reconnect_max_ms;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Start(**r, options);
  if (!node.ok()) return Fail("node", node.status());
  std::cout << "node " << (*r)->public_key_hex() << " listening on "
            << BoundAddress(a.listen, (*node)->port()) << std::endl;
  std::vector<NodePeer> before;
  ReplicaStats own_before = (*r)->stats();
  LogOwnKeyChanges(ReplicaStats(), own_before, a.dir);
  while (WaitForStopSignal(kPeerLogPollMs) == 0) {
    if (a.log_peers) {
      std::vector<NodePeer> now = (*node)->peers();
      LogPeerChanges(before, now);
      before = std::move(now);
    }
    ReplicaStats own_now = (*r)->stats();
    LogOwnKeyChanges(own_before, own_now, a.dir);
    own_before = own_now;
  }
  (*node)->Stop();
  const NodeStats s = (*node)->stats();
  std::cout << "stopped: " << s.batches_applied << " batches applied, " << s.pushes_sent
            << " pushes, " << s.rounds_synced << " rounds synced, " << s.bytes_sent
            << " bytes sent, " << s.bytes_received << " bytes received" << std::endl;
  return kExitOk;
}

// The C API's change JSON (include/edgesync.h, edgesync_subscribe), and a
// newline.
void AppendChangeJson(std::string* out, const internal::ChangeRecord& c) {
  Change change;
  change.document = c.document;
  change.paths = c.paths;
  change.paths_truncated = c.paths_truncated;
  change.remote = c.remote;
  change.author = c.author.Hex();
  absl::StrAppend(out, ChangeJson(change), "\n");
}

int RunWatch(const NodeArgs& a) {
  BlockStopSignals();
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("watch", r.status());
  internal::ReplicaStore& store = (*r)->core().store();
  uint64_t last = 0;
  absl::Status s = store.Read([&last](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<uint64_t> seq = txn.LastChangeSeq();
    if (!seq.ok()) return seq.status();
    last = *seq;
    return absl::OkStatus();
  });
  if (!s.ok()) return Fail("watch", s);
  do {
    std::string lines;
    uint64_t seen = last;
    uint64_t missed = 0;
    s = store.Read([&](internal::StoreTxn& txn) {
      lines.clear();
      seen = last;
      missed = 0;
      return txn.ForEachChangeAfter(last, [&](const internal::ChangeRecord& c) {
        // The feed keeps the newest changes only; a watcher that fell that
        // far behind says how many it missed.
        if (c.seq > seen + 1) missed += c.seq - seen - 1;
        seen = c.seq;
        if (absl::string_view(c.document).substr(0, a.prefix.size()) == a.prefix) {
          AppendChangeJson(&lines, c);
        }
        return true;
      });
    });
    if (!s.ok()) return Fail("watch", s);
    if (missed > 0) {
      std::cerr << "edgesync: watch: missed " << missed
                << " changes (the change feed keeps only the newest)" << std::endl;
    }
    last = seen;
    if (!lines.empty()) {
      std::cout << lines << std::flush;
      if (!std::cout) return Fail("watch", "cannot write to stdout");
    }
  } while (WaitForStopSignal(kWatchPollMs) == 0);
  return kExitOk;
}

// 1023 B, 1.5 KiB, ..., 1.0 TiB
std::string Size(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

std::string VersionVectorJson(const VersionVector& vv) {
  Json authors = Json::object();
  for (const auto& entry : vv) {
    Json list = Json::array();
    for (const auto& range : entry.second) list.push_back(Json::array({range.first, range.second}));
    authors[entry.first] = std::move(list);
  }
  return authors.dump();
}

int RunStatus(const NodeArgs& a) {
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenExisting(a.dir);
  if (!r.ok()) return Fail("status", r.status());
  Replica& replica = **r;
  absl::StatusOr<std::vector<std::string>> trusted = replica.TrustedKeys();
  if (!trusted.ok()) return Fail("status", trusted.status());
  absl::StatusOr<VersionVectors> vvs = replica.GetVersionVectors();
  if (!vvs.ok()) return Fail("status", vvs.status());
  absl::StatusOr<std::vector<std::string>> ids = replica.DocumentIds();
  if (!ids.ok()) return Fail("status", ids.status());

  uint64_t batches = 0, held = 0, changes = 0, equivocations = 0, last_time_ms = 0;
  internal::ReplicaStore& store = replica.core().store();
  absl::Status s = store.Read([&](internal::StoreTxn& txn) -> absl::Status {
    absl::StatusOr<std::optional<internal::ClockMark>> mark = txn.GetClockMark();
    if (!mark.ok()) return mark.status();
    last_time_ms = mark->has_value() ? crdt::HlcMillis((*mark)->hlc) : 0;
    absl::StatusOr<uint64_t> n = txn.read().CountEntries(txn.dbs().log);
    if (!n.ok()) return n.status();
    batches = *n;
    if (n = txn.CountWaiting(); !n.ok()) return n.status();
    held = *n;
    if (n = txn.LastChangeSeq(); !n.ok()) return n.status();
    changes = *n;
    equivocations = 0;
    for (const std::string& id : *ids) {
      absl::StatusOr<std::optional<internal::DocumentRecord>> doc = txn.FindDocument(id);
      if (!doc.ok()) return doc.status();
      if (!doc->has_value()) continue;
      if (n = txn.CountEquivocations((*doc)->num); !n.ok()) return n.status();
      equivocations += *n;
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return Fail("status", s);
  absl::StatusOr<internal::LmdbStats> lmdb = store.env().Stats();
  if (!lmdb.ok()) return Fail("status", lmdb.status());

  std::string out = absl::StrCat("key            ", replica.public_key_hex(), "\n");
  for (const std::string& key : *trusted) {
    absl::StrAppend(&out, "trusted        ", key,
                    key == replica.public_key_hex() ? " (this replica)" : "", "\n");
  }
  size_t width = 8;
  for (const std::string& id : *ids) width = std::max(width, id.size());
  absl::StrAppend(&out, "documents      ", ids->size(), "\n");
  if (!ids->empty()) {
    absl::StrAppend(&out, absl::StrFormat("  %-*s  %-64s  %s\n", static_cast<int>(width),
                                          "document", "state hash", "version vector"));
  }
  for (const std::string& id : *ids) {
    absl::StatusOr<std::string> digest = replica.document(id).Digest();
    if (!digest.ok()) return Fail("status", digest.status());
    auto vv = vvs->find(id);
    absl::StrAppend(
        &out, absl::StrFormat("  %-*s  %s  %s\n", static_cast<int>(width), id, *digest,
                              VersionVectorJson(vv == vvs->end() ? VersionVector() : vv->second)));
  }
  absl::StrAppend(&out, "batches stored ", batches, "\n",  //
                  "batches held   ", held, " (timestamped ahead of this clock)\n",
                  "equivocations  ", equivocations, "\n",  //
                  "changes        ", changes, " (change feed sequence)\n", "store          ",
                  Size(lmdb->used_bytes), " used, map ", Size(lmdb->map_bytes), " of at most ",
                  Size(lmdb->map_bytes_max), "\n",  //
                  "last time      ", last_time_ms,
                  " (ms since the epoch: the time of its last write, or of its first open "
                  "since boot)\n");
  if (!replica.core().copied().empty()) {
    absl::StrAppend(&out, "copied         commits refused: ", replica.core().copied(), "\n");
  }
  absl::StatusOr<internal::ReplicaCore::OwnKeyState> own = replica.core().OwnKey();
  if (!own.ok()) return Fail("status", own.status());
  if (own->equivocation.has_value()) {
    absl::StrAppend(&out, "own key        equivocated at seq ", own->equivocation->seq,
                    " of document \"", own->equivocation->document,
                    "\" (a peer holds another batch for it): commits refused; run edgesync "
                    "rekey ", a.dir, "\n");
  }
  for (const auto& [document, seqs] : own->missing) {
    absl::StrAppend(&out, "own seqs       \"", document, "\" ",
                    internal::ReplicaCore::SeqRangesText(seqs),
                    " held by a peer, not here (restored from an earlier copy?): commits on it "
                    "refused until a sync fetches them back\n");
  }
  std::cout << out << std::flush;
  return kExitOk;
}

}  // namespace

void AddNodeCommands(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<NodeArgs>();

  CLI::App* node = app.add_subcommand(
      "node",
      "Run the replica in DIR as a gossip node: accept peers on HOST:PORT, dial\n"
      "the --peer addresses (and the peers they tell of), push new batches and\n"
      "sync with a random peer every interval, over encrypted TCP to trusted\n"
      "keys only. Prints \"node <key> listening on <host:port>\" once bound, runs\n"
      "until SIGINT or SIGTERM, then closes every connection and exits 0.\n"
      "Writes by other processes to DIR (edgesync put) are sent at the next\n"
      "sync round.");
  node->add_option("DIR", a->dir, "the replica's directory")->required();
  node->add_option("--listen", a->listen,
                   "HOST:PORT to accept peers on; port 0: the system picks one (printed)")
      ->required();
  node->add_option("--peer", a->peers, "HOST:PORT of a peer to dial; repeat for more");
  node->add_option("--interest", a->interest,
                   "replicate only documents whose id starts with PREFIX; repeat for more\n"
                   "(default: every document)");
  node->add_option("--fanout", a->fanout, "peers each new batch is pushed to")
      ->transform(DecimalInt64())
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  node->add_option("--sync-interval-ms", a->sync_interval_ms,
                   "a full sync round with a random peer this often")
      ->transform(DecimalInt64())
      ->check(CLI::Range(uint64_t{10}, uint64_t{86400000}))
      ->capture_default_str();
  node->add_option("--reconnect-max-ms", a->reconnect_max_ms,
                   "redial a lost peer within 500 ms, doubling the wait up to this")
      ->transform(DecimalInt64())
      ->check(CLI::Range(uint64_t{500}, uint64_t{86400000}))
      ->capture_default_str();
  node->add_option("--durability", a->durability,
                   "durable: every commit of this process is on disk when it returns;\n"
                   "fast: one sync per commit, a power cut may undo the last commits\n"
                   "(never seen by peers) but never corrupts the store")
      ->check(CLI::IsMember({"durable", "fast"}))
      ->capture_default_str();
  node->add_flag("--log-peers", a->log_peers, "print a line when a peer connects or disconnects");
  node->callback([a, exit_code] { *exit_code = RunNode(*a); });

  CLI::App* watch = app.add_subcommand(
      "watch",
      "Print one line of JSON per change to a document of DIR from now on, local or\n"
      "remote, made by any process (a running node included), as the C API does:\n"
      "{\"doc\":\"...\",\"paths\":[\"/a\"],\"remote\":true,\"author\":\"<hex>\","
      "\"paths_truncated\":false}\n"
      "(paths_truncated: only the first 256 paths are listed). Runs until SIGINT or\n"
      "SIGTERM.");
  watch->add_option("DIR", a->dir, "the replica's directory")->required();
  watch->add_option("PREFIX", a->prefix, "only documents whose id starts with this");
  watch->callback([a, exit_code] { *exit_code = RunWatch(*a); });

  CLI::App* status = app.add_subcommand(
      "status",
      "Print the replica's key, trusted keys, each document with its state hash and\n"
      "version vector (one line each), and store figures. (A running node's peer\n"
      "counters live in that process; it prints them when it stops.)");
  status->add_option("DIR", a->dir, "the replica's directory")->required();
  status->callback([a, exit_code] { *exit_code = RunStatus(*a); });
}

}  // namespace edgesync::cli
