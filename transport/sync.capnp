# Messages of the sync session (docs/sync-protocol.md). A session runs in
# rounds; each side sends, per round:
#
#   flight 1: hello, digests* (drill-down), documents* (none when both
#             summaries match), endOfFlight(1)
#   flight 2: (batches | chunk)*, endOfFlight(2)      -- only if flight 1 showed a difference
#   flight 3: hashes*, endOfFlight(3)                 -- only if flight 1 showed a difference
#
# and may send `push` (gossip) at any time. Bulk content (document lists,
# hash lists) is a compact varint encoding inside Data fields, described
# beside each field; signed batches travel verbatim.

@0xb894b32e729c5a01;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("edgesync::transport::schema");

struct SyncMessage {
  round @0 :UInt32;            # the sender's round; pushes and aborts ignore it
  union {
    hello @1 :Hello;
    documents @2 :Data;
      # DocumentList: varint newAuthors, 32-byte keys (appended to the
      # sender's author table, numbered from 0 in order of introduction for
      # the whole session), varint entries, then per entry: varint id length,
      # id bytes, 16-byte state hash, varint authors, per author: varint
      # author number, 8-byte content tag, 1-byte log size class
      # (floor(2 log2 of the author's stored bytes)), varint batches, per batch (in
      # order of first seq) varint first minus the previous batch's first
      # (0 before the first batch of the entry) and varint last minus first.
      # One document, and one author's batches, may span several entries;
      # the receiver unites them.
    batches @3 :List(Data);    # complete signed batches (batch.capnp SignedBatch)
    chunk @4 :BatchChunk;      # one piece of a batch too large for a message
    hashes @5 :Data;
      # HashList: varint entries, per entry: varint id length, id bytes,
      # 16-byte state hash.
    endOfFlight @6 :EndOfFlight;
    push @7 :List(Data);       # gossip: batches to apply now, outside rounds
    abort @8 :Text;            # the sender ends the session, and why
    digests @9 :Data;
      # DigestList, one depth of the drill-down (docs/sync-protocol.md):
      # varint depth (1 for the root's children), then, for the children of
      # every node opened at the previous depth in key order, 16 entries
      # each: varint count of the sender's documents under the child, then
      # if the count is not 0 the 8-byte XOR of their entry digests. A
      # depth's entries may span several messages.
  }
}

struct Hello {
  protocolVersion @0 :UInt16;  # the newest version the sender speaks: 2
  maxMessageBytes @1 :UInt32;  # the largest message the sender accepts
  interest @2 :List(Text);     # document-id prefixes; "" is every document
  partials @3 :List(PartialHeld);
  refusedAuthors @4 :Data;
    # 32-byte keys, concatenated, at most 256 (kRefusedAuthorsMax): authors
    # whose batches the sender refuses (it does not trust them), most
    # recently refused first; the receiver sends none of their batches.
  oldestVersion @5 :UInt16;    # the oldest version the sender speaks (0: = protocolVersion)
  summary @6 :Data;
    # 16 bytes: BLAKE2b-128 of the sender's flight-1 listing in canonical
    # form (docs/sync-protocol.md); equal summaries and equal interests skip
    # the listing.
  wallMillis @7 :UInt64;
    # The sender's wall clock (ms since the Unix epoch) when it built the
    # hello; 0 = unknown. The receiver reports a peer whose clock is off by
    # more than its skew window; nothing else depends on it.
  documentCount @8 :UInt32;
    # How many documents the sender lists this round (its interest); decides
    # whether a differing round lists every document or drills down.
}

struct PartialHeld {
  transferId @0 :Data;         # BLAKE2b-256 of the whole batch
  bytesHeld @1 :UInt64;        # the prefix of it already received
}

struct BatchChunk {
  transferId @0 :Data;         # BLAKE2b-256 of the whole batch
  totalBytes @1 :UInt64;
  offset @2 :UInt64;           # where `data` starts in the batch
  data @3 :Data;
}

struct EndOfFlight {
  flight @0 :UInt8;            # 1, 2 or 3
  messages @1 :UInt32;         # messages of this flight before this one
  batches @2 :UInt32;          # flight 2: batches sent in it
}
