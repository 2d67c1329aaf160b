// Files of the disk cache of compiled kernels.
#include "disk_cache.h"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <sstream>

#include <unistd.h>

namespace keops {

namespace {

constexpr const char* kMagic = "keops-cache-entry";

thread_local std::vector<std::string> t_warnings;

// The whole file, or false if it cannot be opened or read.
bool read_file(const std::filesystem::path& path, std::string& out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  out.clear();
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool ok = !std::ferror(f);
  std::fclose(f);
  return ok;
}

// Writes through a temporary file (unique to this process and call) and a rename; removes the temporary on failure.
bool write_file(const std::filesystem::path& path, const std::string& data) {
  static std::atomic<uint64_t> counter{0};
  std::filesystem::path tmp = path;
  tmp += ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  ok = std::fflush(f) == 0 && ok;  // a full disk often shows only here or at close
  ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (ok) std::filesystem::rename(tmp, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

std::string checksum(const std::string& info, const std::string& data) { return key_digest(info + '\0' + data); }

void remove_entry(const std::filesystem::path& data, const std::filesystem::path& meta) {
  std::error_code ec;
  std::filesystem::remove(meta, ec);  // the meta first: without it the data is never read
  std::filesystem::remove(data, ec);
}

}  // namespace

std::string read_file(const std::filesystem::path& path) {
  std::string s;
  return read_file(path, s) ? s : "";
}

std::string key_digest(const std::string& key) {
  uint64_t h1 = 1469598103934665603ULL, h2 = 1099511628211ULL * 31;  // two FNV-1a-like 64-bit halves
  for (unsigned char c : key) {
    h1 = (h1 ^ c) * 1099511628211ULL;
    h2 = (h2 ^ c) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
  return buf;
}

std::string read_entry(const std::filesystem::path& data, const std::filesystem::path& meta, const std::string& key,
                       std::string* info) {
  std::string stored, contents;
  if (!read_file(meta, stored) || !read_file(data, contents)) return "";  // absent (or being written)
  // meta: "<magic> <size> <checksum>\n<info>\n<key>"
  std::istringstream in(stored);
  std::string magic, sum, line;
  unsigned long long size = 0;
  bool ok = static_cast<bool>(in >> magic >> size >> sum) && magic == kMagic && in.get() == '\n' &&
            static_cast<bool>(std::getline(in, line));
  if (ok) {
    const std::streamoff at = in.tellg();
    ok = at >= 0 && stored.compare(static_cast<size_t>(at), std::string::npos, key) == 0 &&
         stored.size() - static_cast<size_t>(at) == key.size() && contents.size() == size && checksum(line, contents) == sum;
  }
  if (!ok) {
    remove_entry(data, meta);
    t_warnings.push_back("pykeops: the cached kernel " + data.string() + " was damaged (" +
                         std::to_string(contents.size()) + " bytes, size or checksum mismatch): deleted and rebuilt");
    return "";
  }
  if (info) *info = line;
  return contents;
}

bool write_entry(const std::filesystem::path& data, const std::filesystem::path& meta, const std::string& key,
                 const std::string& contents, const std::string& info) {
  const std::string header = std::string(kMagic) + " " + std::to_string(contents.size()) + " " + checksum(info, contents) +
                             "\n" + info + "\n";
  if (write_file(data, contents) && write_file(meta, header + key)) return true;
  remove_entry(data, meta);  // no orphan data file, no stale meta
  return false;
}

std::vector<std::string> take_warnings() {
  std::vector<std::string> w;
  w.swap(t_warnings);
  return w;
}

}  // namespace keops
