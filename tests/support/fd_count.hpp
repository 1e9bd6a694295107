// tests/support/fd_count.hpp: list this process's open descriptors, so that
// heavy tests can check they leak none (issue 2: "count /proc/self/fd before
// and after each heavy test") and find the highest descriptor in use.
#pragma once

#include <evq/platform.hpp>

#if EVQ_POSIX
#include <dirent.h>

#include <cstdlib>
#endif

namespace evq::test {

struct FdListing {
  int count = -1;    // open descriptors; -1 where they cannot be listed
  int highest = -1;  // the highest open descriptor number
};

// Lists /proc/self/fd (Linux) or /dev/fd (BSD, macOS), leaving out the
// descriptor that the listing itself holds open.
inline FdListing list_open_fds() {
  FdListing out;
#if EVQ_POSIX
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) dir = opendir("/dev/fd");
  if (!dir) return out;
  const int own = dirfd(dir);
  out.count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd == own) continue;
    ++out.count;
    if (fd > out.highest) out.highest = fd;
  }
  closedir(dir);
#endif
  return out;
}

}  // namespace evq::test
