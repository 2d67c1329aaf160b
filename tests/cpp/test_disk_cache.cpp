// Disk-cache entries: round trip, damaged entries deleted with a warning, failed writes leave no file.
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

#include "catch.hpp"
#include "jit/disk_cache.h"

using namespace keops;
namespace fs = std::filesystem;

namespace {

struct TempFolder {
  fs::path path = fs::temp_directory_path() / ("keops_test_disk_cache_" + std::to_string(::getpid()));
  TempFolder() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempFolder() { fs::remove_all(path); }
  int files() const { return static_cast<int>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

void overwrite(const fs::path& p, const std::string& s) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  REQUIRE(f);
  std::fwrite(s.data(), 1, s.size(), f);
  std::fclose(f);
}

// Writes past `bytes` fail with EFBIG (as they would with ENOSPC on a full disk) while alive.
struct FileSizeLimit {
  rlimit old{};
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit r = old;
    r.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &r) == 0);
  }
  ~FileSizeLimit() { ::setrlimit(RLIMIT_FSIZE, &old); }
};

}  // namespace

TEST_CASE("disk cache: an entry reads back with its info; a missing one is absent, silently") {
  TempFolder t;
  const fs::path data = t.path / "e.o", meta = t.path / "e.key";
  const std::string key = "the key\nover lines", contents(5000, '\x7f');
  CHECK(read_entry(data, meta, key).empty());
  REQUIRE(write_entry(data, meta, key, contents, "cubin sm_80"));
  std::string info;
  CHECK(read_entry(data, meta, key, &info) == contents);
  CHECK(info == "cubin sm_80");
  CHECK(read_entry(data, meta, key + "x").empty());  // another key: not this entry
  CHECK(take_warnings().size() == 1);                // (its meta then reads as damaged, and the entry is gone)
  CHECK(t.files() == 0);
}

TEST_CASE("disk cache: damaged entries are deleted with a warning") {
  TempFolder t;
  const fs::path data = t.path / "e.o", meta = t.path / "e.key";
  const std::string key = "k", contents = std::string(100, 'a') + std::string(100, 'b');
  take_warnings();
  auto damaged = [&](const fs::path& file, const std::function<std::string(std::string)>& damage) {
    REQUIRE(write_entry(data, meta, key, contents, "ptx sm_80"));
    overwrite(file, damage(read_file(file)));
    CHECK(read_entry(data, meta, key).empty());
    CHECK(t.files() == 0);
    auto w = take_warnings();
    REQUIRE(w.size() == 1);
    CHECK(w[0].find("damaged") != std::string::npos);
  };
  damaged(data, [](std::string s) { return s[150] ^= 1, s; });         // one bit
  damaged(data, [](std::string s) { return s.substr(0, 150); });       // truncated
  damaged(data, [](std::string) { return std::string(); });            // empty
  damaged(data, [](std::string s) { return s + "x"; });                // longer
  damaged(data, [](std::string s) { return std::swap(s[10], s[150]), s; });  // same size and bytes, moved
  damaged(meta, [](std::string) { return std::string(); });            // empty meta
  damaged(meta, [](std::string s) { return s.substr(0, s.size() / 2); });  // truncated meta
  damaged(meta, [](std::string s) { return s[s.find('\n') + 1] ^= 1, s; });  // the info line (checksummed too)
}

TEST_CASE("disk cache: a failed write leaves no file, temporaries included") {
  TempFolder t;
  const fs::path data = t.path / "e.o", meta = t.path / "e.key";
  {
    FileSizeLimit limit(4096);
    CHECK_FALSE(write_entry(data, meta, "k", std::string(10000, 'd')));  // the data fails
    CHECK(t.files() == 0);
    CHECK_FALSE(write_entry(data, meta, std::string(10000, 'k'), "small"));  // the data is written, the meta fails
    CHECK(t.files() == 0);
  }
  CHECK_FALSE(write_entry(t.path / "missing" / "e.o", t.path / "missing" / "e.key", "k", "data"));  // no folder
  REQUIRE(write_entry(data, meta, "k", "data"));  // an old entry is replaced whole, or removed
  {
    FileSizeLimit limit(4096);
    CHECK_FALSE(write_entry(data, meta, "k", std::string(10000, 'd')));
  }
  CHECK(t.files() == 0);
  CHECK(take_warnings().empty());
}

TEST_CASE("disk cache: key digests are stable, 128-bit hex, and change with any byte") {
  const std::string d = key_digest("Sum_Reduction(x,0)");
  CHECK(d.size() == 32);
  CHECK(d.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(key_digest("Sum_Reduction(x,0)") == d);
  CHECK(key_digest("Sum_Reduction(x,1)") != d);
  CHECK(key_digest("") != key_digest(std::string(1, '\0')));
}

TEST_CASE("disk cache: a folder that cannot be written only fails the write") {
  TempFolder t;
  const fs::path missing = t.path / "no" / "such" / "folder";
  CHECK_FALSE(write_entry(missing / "a.o", missing / "a.key", "key", "data"));
  CHECK_FALSE(fs::exists(missing));
  CHECK(read_entry(missing / "a.o", missing / "a.key", "key").empty());
}
