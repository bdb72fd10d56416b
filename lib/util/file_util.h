// File: lib/util/file_util.h
//
// Small POSIX file helpers with absl::Status errors that name the path and
// the system's reason.

#ifndef EDGESYNC_LIB_UTIL_FILE_UTIL_H_
#define EDGESYNC_LIB_UTIL_FILE_UTIL_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::internal {

// Maps an errno from an operation on `path` to a status: ENOENT kNotFound,
// EACCES/EPERM kPermissionDenied, ENOSPC/EDQUOT kResourceExhausted, others
// kUnavailable. The message names the operation, path and strerror.
absl::Status ErrnoStatus(int err, absl::string_view operation, absl::string_view path);

// Writes a file atomically in pieces: a temporary file in the same
// directory, then Commit() fsyncs it, renames it over the target and fsyncs
// the directory. Destroying it uncommitted removes the temporary file.
//
// The temporary file is `path`.tmp.<pid>.<16 random hex digits>, created
// with O_EXCL | O_NOFOLLOW and mode 0600 (set to `mode` on Commit()), so a
// file or symbolic link planted in the directory is never opened or written
// through; the rename replaces a link at `path` rather than following it.
// Thread-compatible.
class AtomicFileWriter {
 public:
  static absl::StatusOr<std::unique_ptr<AtomicFileWriter>> Create(const std::string& path,
                                                                  mode_t mode);
  ~AtomicFileWriter();
  absl::Status Append(absl::string_view bytes);
  absl::Status Commit();
  uint64_t bytes_written() const { return written_; }

 private:
  AtomicFileWriter(std::string path, std::string tmp, int fd, mode_t mode)
      : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd), mode_(mode) {}
  std::string path_;
  std::string tmp_;
  int fd_;
  mode_t mode_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Writes `contents` to `path` atomically: a temporary file in the same
// directory with `mode`, fsync, rename over `path`, fsync of the directory.
// A crash leaves either the old file or the new one.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode);

// Reads a whole file of at most `max_bytes`; kResourceExhausted if larger.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

// Reads a whole file that holds a secret (`what` names it in errors, e.g.
// "identity file"), refusing any file another user could have planted or
// may read. The checks run on the opened descriptor (fstat), so the file
// cannot be swapped between check and read:
//   kFailedPrecondition: `path` is a symbolic link (never followed) or not a
//     regular file (a directory, FIFO, device);
//   kPermissionDenied: it is owned by another uid than the effective one, or
//     group or others have any access (mode & 077);
//   kResourceExhausted: it is larger than `max_bytes`;
//   kNotFound: it does not exist.
// Each message names the path and the fix.
absl::StatusOr<std::string> ReadOwnerOnlyFile(const std::string& path, absl::string_view what,
                                              size_t max_bytes);

// Checks that `dir` is a directory that only the effective user may change:
// owned by the effective uid and not writable by group or others
// (kPermissionDenied otherwise; kFailedPrecondition if it is not a
// directory). Anyone else who may write into it could plant or replace the
// files kept there. The message names the path and the fix.
absl::Status CheckPrivateDirectory(const std::string& dir);

// Creates `dir` (mode 0700) if missing, then CheckPrivateDirectory(): an
// existing directory that another user owns or that group or others may
// write is refused (kPermissionDenied); kFailedPrecondition if it exists and
// is not a directory.
absl::Status EnsureDirectory(const std::string& dir);

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_UTIL_FILE_UTIL_H_
