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
// Where `edgesync rekey` writes the new key before the store switches to it
// (ReplicaCore::Rekey); renamed over kIdentityFileName once it has.
inline constexpr char kPendingIdentityFileName[] = "identity.key.new";

// Loads DIR/identity.key, or DIR/`file_name` (docs/storage-format.md, "Identity file").
// kNotFound if it does not exist; kPermissionDenied if DIR or the file is
// owned by another user, DIR is writable by group or others, or group or
// others may access the file; kFailedPrecondition if the file is a symbolic
// link (never followed) or not a regular file; kDataLoss if it is malformed.
absl::StatusOr<transport::SigningKey> LoadIdentity(const std::string& dir,
                                                   const char* file_name = kIdentityFileName);

// Generates a new key pair and writes DIR/identity.key atomically (through
// a fresh temporary file created with O_EXCL | O_NOFOLLOW). Replaces an
// existing identity file (the caller decides when that is right), but
// refuses (kFailedPrecondition) a symbolic link or other non-regular file
// in its place, and DIR as LoadIdentity does (kPermissionDenied).
absl::StatusOr<transport::SigningKey> CreateIdentity(const std::string& dir,
                                                     const char* file_name = kIdentityFileName);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_REPLICA_IDENTITY_H_
