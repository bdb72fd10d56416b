// The C API of sessions and nodes (include/edgesync.h) over
// edgesync::Session and edgesync::Node.

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>
#include <type_traits>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/capi/capi_internal.h"
#include "transport/admission.h"
#include "transport/secure_channel.h"
#include "transport/sync_session.h"

using edgesync::capi::Acquire;
using edgesync::capi::CopyOut;
using edgesync::capi::FromStatus;
using edgesync::capi::Guard;
using edgesync::capi::GuardVoid;
using edgesync::capi::Log;
using edgesync::capi::Misuse;
using edgesync::capi::OrEmpty;
using edgesync::capi::Publish;
using edgesync::capi::Release;
using edgesync::capi::SetError;

namespace {

constexpr char kNoReplica[] = "NULL or closed edgesync_replica handle";
constexpr char kNoSession[] = "NULL or freed edgesync_session handle";
constexpr char kNoNode[] = "NULL or stopped edgesync_node handle";

// The header's limits are the library's.
static_assert(EDGESYNC_MESSAGE_BYTES_MIN == edgesync::transport::kSyncMessageBytesMin);
static_assert(EDGESYNC_MESSAGE_BYTES_DEFAULT == edgesync::transport::kSyncMessageBytesDefault);
static_assert(EDGESYNC_MESSAGE_BYTES_MAX == edgesync::transport::kSyncMessageBytesMax);
static_assert(EDGESYNC_INTEREST_PREFIXES_MAX == edgesync::transport::kInterestPrefixesMax);
static_assert(EDGESYNC_NODE_CONNECTIONS_MAX <=
              edgesync::transport::AdmissionOptions{}.addresses_max);

// Holds a session's lock for one call, and marks the calling thread as
// inside it. A thread already inside (a subscription callback that this
// session's receive is running called it again) is refused instead of
// deadlocking on the non-recursive lock.
class SessionCall {
 public:
  explicit SessionCall(edgesync_session& s) : s_(s) {
    if (s_.owner.load(std::memory_order_acquire) == std::this_thread::get_id()) return;
    s_.mu.Lock();
    s_.owner.store(std::this_thread::get_id(), std::memory_order_release);
    locked_ = true;
  }
  ~SessionCall() {
    if (!locked_) return;
    s_.owner.store(std::thread::id(), std::memory_order_release);
    s_.mu.Unlock();
  }
  SessionCall(const SessionCall&) = delete;
  SessionCall& operator=(const SessionCall&) = delete;

  // False for a re-entrant call (and it has set the error).
  bool ok() const {
    if (locked_) return true;
    SetError(EDGESYNC_WRONG_STATE,
             "called from a callback that this session's own call is running");
    return false;
  }

 private:
  edgesync_session& s_;
  bool locked_ = false;
};

// Logs a failed session call: a round that ended with differing hashes
// leaves the session usable, anything else failed it.
void LogSessionFailure(edgesync::Session& s, const absl::Status& status) {
  if (s.failure().ok()) {
    Log(EDGESYNC_LOG_WARN,
        absl::StrCat("session round ended with differing state hashes: ", status.message()));
  } else {
    Log(EDGESYNC_LOG_WARN, absl::StrCat("session failed: ", status.message()));
  }
}

// ---------------------------------------------------------------- node config
// Every key of the config is checked here against the ranges of
// docs/c-api.md, so a bad value is INVALID_ARGUMENT naming the key, never
// a late failure inside the node's thread. Unknown and repeated keys are
// errors too: a misspelt key must not silently mean its default.

absl::Status BadKey(absl::string_view key, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("node config \"", key, "\" ", why));
}

// "host:port": a non-empty host (a name, an IPv4 address or a bracketed
// IPv6 address), a decimal port of at most 65535 (0 only if port_zero_ok),
// at most EDGESYNC_ADDRESS_BYTES_MAX bytes in all.
absl::Status CheckAddress(absl::string_view what, absl::string_view a, bool port_zero_ok) {
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", a.substr(0, 64), a.size() > 64 ? "..." : "", "\" ", why));
  };
  if (a.size() > EDGESYNC_ADDRESS_BYTES_MAX) {
    return bad(absl::StrCat("is over the limit of ", EDGESYNC_ADDRESS_BYTES_MAX, " bytes"));
  }
  const size_t colon = a.rfind(':');
  if (colon == absl::string_view::npos) return bad("is not host:port");
  const absl::string_view host = a.substr(0, colon);
  const absl::string_view port = a.substr(colon + 1);
  if (host.empty()) return bad("has no host");
  if (host.front() == '[' ? host.back() != ']' : host.find(':') != absl::string_view::npos) {
    return bad("is not host:port (write an IPv6 host in brackets)");
  }
  if (port.empty() || port.size() > 5) return bad("has no port of 1 to 5 digits");
  uint32_t n = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad("has a port that is not a decimal number");
    n = n * 10 + static_cast<uint32_t>(c - '0');
  }
  if (n > 65535) return bad("has a port over 65535");
  if (n == 0 && !port_zero_ok) return bad("has port 0");
  return absl::OkStatus();
}

// Reads an integer in [min, max] into *out.
template <typename T>
absl::Status ReadInt(absl::string_view key, const nlohmann::json& v, uint64_t min, uint64_t max,
                     T* out) {
  static_assert(std::is_unsigned_v<T>);
  const std::string range = absl::StrCat("must be an integer in [", min, ", ", max, "]");
  if (!v.is_number_unsigned()) return BadKey(key, range);
  const uint64_t n = v.get<uint64_t>();
  if (n < min || n > max) return BadKey(key, absl::StrCat(range, ", got ", n));
  *out = static_cast<T>(n);
  return absl::OkStatus();
}

// Reads an array of at most `count_max` strings into *out.
absl::Status ReadStrings(absl::string_view key, const nlohmann::json& v, size_t count_max,
                         std::vector<std::string>* out) {
  if (!v.is_array()) return BadKey(key, "must be an array of strings");
  if (v.size() > count_max) {
    return BadKey(key, absl::StrCat("has ", v.size(), " entries, over the limit of ", count_max));
  }
  out->clear();
  for (const nlohmann::json& e : v) {
    if (!e.is_string()) return BadKey(key, "must be an array of strings");
    out->push_back(e.get<std::string>());
  }
  return absl::OkStatus();
}

constexpr uint64_t kMsMax = uint64_t{1} << 40;  // the channel's timeout limit: 34 years

// Parses the node config of edgesync_node_start (docs/c-api.md).
absl::StatusOr<edgesync::NodeOptions> ParseNodeConfig(absl::string_view text) {
  edgesync::NodeOptions o;
  if (text.empty()) return o;
  if (text.size() > EDGESYNC_NODE_CONFIG_BYTES_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("node config of ", text.size(),
                                                   " bytes is over the limit of ",
                                                   EDGESYNC_NODE_CONFIG_BYTES_MAX));
  }
  // The callback sees every key and container as it is parsed: repeated
  // keys are caught (the DOM would keep only the last), and containers
  // nested deeper than a config needs are discarded rather than built.
  std::string repeated;
  bool too_deep = false;
  absl::flat_hash_set<std::string> keys;
  const nlohmann::json::parser_callback_t check =
      [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if ((event == Event::object_start || event == Event::array_start) && depth >= 2) {
          too_deep = true;
          return false;
        }
        if (event == Event::key && depth == 1 && parsed.is_string() &&
            !keys.insert(parsed.get<std::string>()).second && repeated.empty()) {
          repeated = parsed.get<std::string>();
        }
        return true;
      };
  const nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), check,
                                                 /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("node config is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("node config must be a JSON object");
  if (too_deep) {
    return absl::InvalidArgumentError(
        "node config nests too deeply: values are strings, integers or arrays of strings");
  }
  if (!repeated.empty()) return BadKey(repeated, "appears more than once");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    absl::Status s;
    if (key == "listen") {
      if (!v.is_string()) return BadKey(key, "must be a string \"host:port\"");
      o.listen = v.get<std::string>();
      s = CheckAddress("node config \"listen\"", o.listen, /*port_zero_ok=*/true);
    } else if (key == "peers") {
      s = ReadStrings(key, v, EDGESYNC_NODE_PEERS_MAX, &o.peers);
      for (size_t i = 0; s.ok() && i < o.peers.size(); ++i) {
        s = CheckAddress("node config \"peers\" entry", o.peers[i], /*port_zero_ok=*/false);
      }
    } else if (key == "interest") {
      s = ReadStrings(key, v, EDGESYNC_INTEREST_PREFIXES_MAX, &o.interest);
      if (s.ok() && o.interest.empty()) s = BadKey(key, "must hold at least one prefix");
      for (size_t i = 0; s.ok() && i < o.interest.size(); ++i) {
        if (o.interest[i].size() > EDGESYNC_DOC_ID_BYTES_MAX) {
          s = BadKey(key, absl::StrCat("has a prefix of ", o.interest[i].size(),
                                       " bytes, longer than a document id (",
                                       EDGESYNC_DOC_ID_BYTES_MAX, ")"));
        }
      }
    } else if (key == "fanout") {
      s = ReadInt(key, v, 1, EDGESYNC_NODE_FANOUT_MAX, &o.fanout);
    } else if (key == "sync_interval_ms") {
      s = ReadInt(key, v, 1, kMsMax, &o.sync_interval_ms);
    } else if (key == "reconnect_max_ms") {
      s = ReadInt(key, v, 500, kMsMax, &o.reconnect_max_ms);
    } else if (key == "max_message_bytes") {
      s = ReadInt(key, v, EDGESYNC_MESSAGE_BYTES_MIN, EDGESYNC_MESSAGE_BYTES_MAX,
                  &o.max_message_bytes);
    } else if (key == "frame_bytes_max") {
      s = ReadInt(key, v, 1, edgesync::transport::kFrameBytesLimit, &o.frame_bytes_max);
    } else if (key == "handshake_timeout_ms") {
      s = ReadInt(key, v, 1, kMsMax, &o.handshake_timeout_ms);
    } else if (key == "idle_timeout_ms") {
      s = ReadInt(key, v, 1, kMsMax, &o.idle_timeout_ms);
    } else if (key == "connections_max") {
      s = ReadInt(key, v, 1, EDGESYNC_NODE_CONNECTIONS_MAX, &o.connections_max);
    } else if (key == "connections_per_address_max") {
      s = ReadInt(key, v, 1, EDGESYNC_NODE_CONNECTIONS_MAX, &o.connections_per_address_max);
    } else if (key == "handshakes_per_address_per_minute") {
      s = ReadInt(key, v, 1, 60000, &o.handshakes_per_address_per_minute);
    } else {
      return BadKey(key, "is not a known key (docs/c-api.md lists them)");
    }
    if (!s.ok()) return s;
  }
  return o;
}

std::string NodeStatsJson(const edgesync::Node& node) {
  const edgesync::NodeStats s = node.stats();
  nlohmann::ordered_json j;
  j["port"] = node.port();
  j["connections_accepted"] = s.connections_accepted;
  j["connections_dialed"] = s.connections_dialed;
  j["connections_refused"] = s.connections_refused;
  j["handshakes_failed"] = s.handshakes_failed;
  j["connections_closed"] = s.connections_closed;
  j["bad_frames"] = s.bad_frames;
  j["sessions_failed"] = s.sessions_failed;
  j["rounds_synced"] = s.rounds_synced;
  j["rounds_mismatched"] = s.rounds_mismatched;
  j["pushes_sent"] = s.pushes_sent;
  j["batches_applied"] = s.batches_applied;
  j["bytes_sent"] = s.bytes_sent;
  j["bytes_received"] = s.bytes_received;
  j["peers_connected"] = s.peers_connected;
  j["connections_displaced"] = s.connections_displaced;
  j["peer_lists_ignored"] = s.peer_lists_ignored;
  j["learned_peers_dropped"] = s.learned_peers_dropped;
  j["batches_invalid"] = s.batches_invalid;
  j["peer_clock_skewed"] = s.peer_clock_skewed;
  nlohmann::ordered_json peers = nlohmann::ordered_json::array();
  for (const edgesync::NodePeer& p : node.peers()) {
    nlohmann::ordered_json e;
    e["address"] = p.address;
    e["key"] = p.key;
    e["connected"] = p.connected;
    e["synced"] = p.synced;
    e["idle_ms"] = p.idle_ms;
    e["bytes_sent"] = p.bytes_sent;
    e["bytes_received"] = p.bytes_received;
    e["last_error"] = p.last_error;
    if (p.clock_known) {
      e["clock_offset_ms"] = p.clock_offset_ms;
    } else {
      e["clock_offset_ms"] = nullptr;
    }
    e["clock_skewed"] = p.clock_skewed;
    peers.push_back(std::move(e));
  }
  j["peers"] = std::move(peers);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// Stops the node and joins its thread; returns the line to log.
std::string StopNode(edgesync_node& h) {
  h.node->Stop();
  const edgesync::NodeStats s = h.node->stats();
  return absl::StrCat("node stopped: key ", h.parent->replica->public_key_hex().substr(0, 16),
                      "..., rounds_synced ", s.rounds_synced, ", sessions_failed ",
                      s.sessions_failed, ", batches_applied ", s.batches_applied);
}

}  // namespace

extern "C" {

// ---------------------------------------------------------------- session

EDGESYNC_API int edgesync_session_new(edgesync_replica* r, const char* doc_prefix,
                                      size_t max_message_bytes, edgesync_session** out) {
  return Guard("edgesync_session_new", [&] {
    if (out == nullptr) return Misuse("out is NULL");
    *out = nullptr;
    std::shared_ptr<edgesync_replica> h = Acquire(r);
    if (!h) return Misuse(kNoReplica);
    edgesync::SessionOptions options;
    options.interest = {std::string(OrEmpty(doc_prefix))};
    if (max_message_bytes != 0) options.max_message_bytes = max_message_bytes;
    absl::StatusOr<std::unique_ptr<edgesync::Session>> s =
        edgesync::Session::Create(*h->replica, options);
    if (!s.ok()) return FromStatus(s.status());
    *out = Publish(std::make_shared<edgesync_session>(std::move(h), *std::move(s)));
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_session_next(edgesync_session* s, uint8_t** out_msg, size_t* out_len) {
  return Guard("edgesync_session_next", [&] {
    if (out_msg == nullptr || out_len == nullptr) return Misuse("out_msg or out_len is NULL");
    *out_msg = nullptr;
    *out_len = 0;
    std::shared_ptr<edgesync_session> h = Acquire(s);
    if (!h) return Misuse(kNoSession);
    SessionCall call(*h);
    if (!call.ok()) return EDGESYNC_WRONG_STATE;
    absl::StatusOr<std::optional<std::string>> m = h->session->Next();
    if (!m.ok()) {
      LogSessionFailure(*h->session, m.status());
      return FromStatus(m.status());
    }
    if (!m->has_value()) return EDGESYNC_OK;
    const std::string& bytes = **m;
    uint8_t* p = static_cast<uint8_t*>(std::malloc(bytes.empty() ? 1 : bytes.size()));
    if (p == nullptr) return SetError(EDGESYNC_NOMEM, "out of memory");
    if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
    *out_msg = p;
    *out_len = bytes.size();
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_session_receive(edgesync_session* s, const uint8_t* msg, size_t len) {
  return Guard("edgesync_session_receive", [&] {
    std::shared_ptr<edgesync_session> h = Acquire(s);
    if (!h) return Misuse(kNoSession);
    if (msg == nullptr && len > 0) return Misuse("msg is NULL");
    if (int c = edgesync::capi::RefuseInsideCallback(); c != EDGESYNC_OK) return c;
    SessionCall call(*h);
    if (!call.ok()) return EDGESYNC_WRONG_STATE;
    const absl::string_view bytes =
        len == 0 ? absl::string_view() : absl::string_view(reinterpret_cast<const char*>(msg), len);
    absl::Status st = h->session->Receive(bytes);
    if (!st.ok()) {
      LogSessionFailure(*h->session, st);
      return FromStatus(st);
    }
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_session_is_synced(edgesync_session* s) {
  return Guard("edgesync_session_is_synced", [&] {
    std::shared_ptr<edgesync_session> h = Acquire(s);
    if (!h) return Misuse(kNoSession);
    SessionCall call(*h);
    if (!call.ok()) return EDGESYNC_WRONG_STATE;
    return h->session->synced() && h->session->failure().ok() ? 1 : 0;
  });
}

EDGESYNC_API void edgesync_session_free(edgesync_session* s) {
  GuardVoid("edgesync_session_free", [&] {
    std::shared_ptr<edgesync_session> h = Release(s);
    (void)h;  // the last reference (unless a call on another thread holds one)
  });
}

// ---------------------------------------------------------------- node

EDGESYNC_API int edgesync_node_start(edgesync_replica* r, const char* config_json,
                                     edgesync_node** out) {
  return Guard("edgesync_node_start", [&] {
    if (out == nullptr) return Misuse("out is NULL");
    *out = nullptr;
    std::shared_ptr<edgesync_replica> h = Acquire(r);
    if (!h) return Misuse(kNoReplica);
    absl::StatusOr<edgesync::NodeOptions> options = ParseNodeConfig(OrEmpty(config_json));
    if (!options.ok()) return FromStatus(options.status());
    absl::StatusOr<std::unique_ptr<edgesync::Node>> node =
        edgesync::Node::Start(*h->replica, *options);
    if (!node.ok()) {
      Log(EDGESYNC_LOG_WARN, absl::StrCat("node failed to start: ", node.status().message()));
      return FromStatus(node.status());
    }
    Log(EDGESYNC_LOG_INFO,
        absl::StrCat("node started: key ", h->replica->public_key_hex().substr(0, 16), "...",
                     options->listen.empty() ? std::string(", dial out only")
                                             : absl::StrCat(", listening on ", options->listen,
                                                            " (port ", (*node)->port(), ")"),
                     ", peers [", absl::StrJoin(options->peers, ","), "]"));
    *out = Publish(std::make_shared<edgesync_node>(std::move(h), *std::move(node)));
    return EDGESYNC_OK;
  });
}

EDGESYNC_API int edgesync_node_add_peer(edgesync_node* n, const char* addr) {
  return Guard("edgesync_node_add_peer", [&] {
    std::shared_ptr<edgesync_node> h = Acquire(n);
    if (!h) return Misuse(kNoNode);
    if (addr == nullptr) return SetError(EDGESYNC_INVALID_ARGUMENT, "addr is NULL");
    if (absl::Status s = CheckAddress("addr", addr, /*port_zero_ok=*/false); !s.ok()) {
      return FromStatus(s);
    }
    return FromStatus(h->node->AddPeer(addr));
  });
}

EDGESYNC_API int edgesync_node_stats(edgesync_node* n, char** out_json) {
  return Guard("edgesync_node_stats", [&] {
    if (out_json == nullptr) return Misuse("out_json is NULL");
    *out_json = nullptr;
    std::shared_ptr<edgesync_node> h = Acquire(n);
    if (!h) return Misuse(kNoNode);
    return CopyOut(NodeStatsJson(*h->node), out_json);
  });
}

EDGESYNC_API void edgesync_node_stop(edgesync_node* n) {
  GuardVoid("edgesync_node_stop", [&] {
    std::shared_ptr<edgesync_node> h = Release(n);
    if (!h) return;
    if (edgesync::capi::InsideSubscriptionCallback()) {
      // Stopping joins the node's thread, which may be the very thread
      // running this callback, or be waiting for the change this thread
      // is delivering: stop it from a helper thread once this returns.
      // It drops the handle (and with it the replica underneath) before
      // logging, so whoever waits for the line may reopen the replica.
      std::thread([h = std::move(h)]() mutable {
        const std::string line = StopNode(*h);
        h.reset();
        Log(EDGESYNC_LOG_INFO, line);
      }).detach();
      return;
    }
    const std::string line = StopNode(*h);
    h.reset();
    Log(EDGESYNC_LOG_INFO, line);
  });
}

}  // extern "C"
