# The signed batch envelope (docs/batch-format.md). This envelope is stable
# across versions: a relay verifies and forwards a batch whose delta format
# is newer than it understands, because it needs only the body's header
# fields and the signature.

@0xd5ca08e39cab8894;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("edgesync::transport::schema");

struct SignedBatch {
  body @0 :Data;       # a BatchBody message, exactly the bytes that were signed
  signature @1 :Data;  # ed25519, 64 bytes, over "edgesync/batch/v1" ‖ body
}

struct BatchBody {
  formatVersion @0 :UInt16;  # envelope format: 1
  document @1 :Text;         # document id, UTF-8, 1..255 bytes
  author @2 :Data;           # 32-byte ed25519 public key of the signer
  seqFirst @3 :UInt64;       # the author's dot range this batch covers, inclusive
  seqLast @4 :UInt64;
  hlc @5 :UInt64;            # time of the (newest) transaction in the batch
  deltaFormat @6 :UInt8;     # 1: crdt compact column encoding
  delta @7 :Data;            # the delta, in deltaFormat
  compacted @8 :Bool;        # true if the author compacted several transactions into it
}
