#include "lib/util/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace edgesync::internal {

absl::Status ErrnoStatus(int err, absl::string_view operation, absl::string_view path) {
  std::string message = absl::StrCat(operation, " \"", path, "\": ", strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

namespace {

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// "0644": permission bits in octal, as chmod takes them.
std::string OctalMode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

std::string FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

// 16 hex digits from the kernel's random source.
absl::StatusOr<std::string> RandomSuffix() {
  unsigned char bytes[8];
  size_t done = 0;
  while (done < sizeof(bytes)) {
    const ssize_t n = ::getrandom(bytes + done, sizeof(bytes) - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("getrandom: ", strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// Attempts at a fresh temporary name before giving up: a collision of 64
// random bits means someone is filling the directory.
constexpr int kTempNameAttempts = 8;

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFileWriter>> AtomicFileWriter::Create(const std::string& path,
                                                                           mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("file path is empty");
  for (int attempt = 0; attempt < kTempNameAttempts; ++attempt) {
    absl::StatusOr<std::string> suffix = RandomSuffix();
    if (!suffix.ok()) return suffix.status();
    std::string tmp = absl::StrCat(path, ".tmp.", ::getpid(), ".", *suffix);
    // O_EXCL: never an existing file; O_NOFOLLOW: never through a link.
    const int fd =
        ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      return std::unique_ptr<AtomicFileWriter>(new AtomicFileWriter(path, std::move(tmp), fd, mode));
    }
    if (errno != EEXIST) return ErrnoStatus(errno, "create", tmp);
  }
  return absl::AlreadyExistsError(absl::StrCat("could not create a fresh temporary file beside \"",
                                               path, "\": every name tried exists"));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

absl::Status AtomicFileWriter::Append(absl::string_view bytes) {
  if (absl::Status s = WriteAll(fd_, bytes, tmp_); !s.ok()) return s;
  written_ += bytes.size();
  return absl::OkStatus();
}

absl::Status AtomicFileWriter::Commit() {
  if (::fchmod(fd_, mode_) != 0) return ErrnoStatus(errno, "chmod", tmp_);
  if (::fsync(fd_) != 0) return ErrnoStatus(errno, "fsync", tmp_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return ErrnoStatus(errno, "close", tmp_);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) return ErrnoStatus(errno, "rename", path_);
  committed_ = true;
  const std::string dir = DirectoryOf(path_);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus(errno, "open directory", dir);
  const int rc = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (rc != 0) return ErrnoStatus(err, "fsync directory", dir);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, mode_t mode) {
  absl::StatusOr<std::unique_ptr<AtomicFileWriter>> w = AtomicFileWriter::Create(path, mode);
  if (!w.ok()) return w.status();
  if (absl::Status s = (*w)->Append(contents); !s.ok()) return s;
  return (*w)->Commit();
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open", path);
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  std::string out;
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("\"", path, "\" is larger than ", max_bytes, " bytes"));
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadOwnerOnlyFile(const std::string& path, absl::string_view what,
                                              size_t max_bytes) {
  // O_NOFOLLOW: a link at `path` fails with ELOOP instead of being
  // followed; O_NONBLOCK: a planted FIFO cannot block the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " \"", path,
                       "\" is a symbolic link, which edgesync does not follow; replace it with the "
                       "file itself"));
    }
    return ErrnoStatus(errno, "open", path);
  }
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " \"", path, "\" is ", FileKind(st.st_mode), ", not a regular file; move it away"));
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return absl::PermissionDeniedError(absl::StrCat(
        what, " \"", path, "\" is owned by uid ", st.st_uid, ", not by the user opening it (uid ",
        me, "), so another user may have planted it; check it, then chown it to uid ", me));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(what, " \"", path, "\" has mode ",
                                                    OctalMode(st.st_mode),
                                                    ": group or others may access it; run chmod "
                                                    "600 on it"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("\"", path, "\" is larger than ", max_bytes, " bytes"));
  }
  std::string out;
  char buf[4096];
  absl::Cleanup scrub = [&buf] { ::explicit_bzero(buf, sizeof(buf)); };  // a secret
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("\"", path, "\" is larger than ", max_bytes, " bytes"));
    }
  }
  return out;
}

absl::Status CheckPrivateDirectory(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus(errno, "stat", dir);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat("\"", dir, "\" exists and is not a directory"));
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me) {
    return absl::PermissionDeniedError(absl::StrCat(
        "directory \"", dir, "\" is owned by uid ", st.st_uid,
        ", not by the user opening it (uid ", me,
        "), who could replace the files in it; chown it to uid ", me, " or use another directory"));
  }
  if ((st.st_mode & 022) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "directory \"", dir, "\" has mode ", OctalMode(st.st_mode),
        ": group or others may create and replace files in it; run chmod go-w on it (0700 is "
        "usual) or use another directory"));
  }
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "create directory", dir);
  }
  return CheckPrivateDirectory(dir);
}

}  // namespace edgesync::internal
