# Canonical encoding of document states and deltas.
#
# Equal states encode to equal bytes: rows are sorted by (path, facet,
# element, author, n) and context entries by author, and the writer builds
# the message in that order. This is the per-entry encoding; batches carry
# the compact column encoding instead (docs/batch-format.md), which decodes to
# the same rows.

@0xd11306dc8a183e6e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("edgesync::crdt::schema");

struct Row {
  path @0 :Data;            # encoded path: per key a varint length, then the UTF-8 bytes
  facet @1 :UInt8;          # 0 map marker, 1 set member/marker, 2 counter, 3 register
  element @2 :Data;         # set member's canonical value bytes; empty otherwise
  author @3 :Data;          # 32-byte ed25519 public key
  n @4 :UInt64;             # dot number
  variants @5 :List(Data);  # sorted, distinct; one unless its author equivocated
}

struct AuthorDots {
  author @0 :Data;          # 32-byte ed25519 public key
  ranges @1 :List(UInt64);  # first0, last0, first1, last1, ... sorted, disjoint, not adjacent
}

struct State {
  formatVersion @0 :UInt16; # 1
  rows @1 :List(Row);
  context @2 :List(AuthorDots);
}
