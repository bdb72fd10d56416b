// File: lib/replica/identity.h
//
// The replica's identity: an ed25519 key pair whose secret half lives in
// DIR/identity.key (mode 0600, hex, written atomically). It is generated the
// first time a replica directory is opened and never logged. A directory
// copied to another device must be given a new identity (docs/operating.md):
// two devices signing as one author would equivocate.

#ifndef EDGESYNC_LIB_REPLICA_IDENTITY_H_
#define EDGESYNC_LIB_REPLICA_IDENTITY_H_

#include <string>

#include "absl/status/statusor.h"
#include "transport/signing_key.h"

namespace edgesync::internal {

inline constexpr char kIdentityFileName[] = "identity.key";

// Loads DIR/identity.key. kNotFound if it does not exist; kPermissionDenied
// if group or others may read it; kDataLoss if it is malformed.
absl::StatusOr<transport::SigningKey> LoadIdentity(const std::string& dir);

// Generates a new key pair and writes DIR/identity.key atomically. Replaces
// an existing identity (the caller decides when that is right).
absl::StatusOr<transport::SigningKey> CreateIdentity(const std::string& dir);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_IDENTITY_H_
