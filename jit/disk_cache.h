// Files of the disk cache of compiled kernels (CPU objects and GPU cubins): names from keys, verified entries.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace keops {

// SHA-256 of the engine's sources (generated at build time by cmake/source_hash.cmake): part of every disk-cache
// key, so that code compiled by another version of the code generators is never loaded.
extern const char* const kSourceHash;

// A stable 128-bit hex digest of a string (two 64-bit FNV-1a-like hashes): file names from keys, and the checksum of
// cache entries (any change of one byte changes both halves).
std::string key_digest(const std::string& key);

// The whole file, or "" if it cannot be read.
std::string read_file(const std::filesystem::path& path);

// One disk-cache entry is two files: `data` (object or cubin) and `meta`, written after the data and so committing
// it: the data's size and checksum, a line of `info`, then the full key.

// The entry's data if `meta` holds `key` and the data matches its size and checksum (info receives the info line);
// "" if the entry is absent. A damaged entry (either file) is deleted, with a warning (take_warnings()), and reads
// as absent, so that the caller rebuilds it.
std::string read_entry(const std::filesystem::path& data, const std::filesystem::path& meta, const std::string& key,
                       std::string* info = nullptr);

// Writes the entry (each file through a temporary and a rename, so that concurrent processes never read half a
// file). On failure (unwritable folder, disk full) nothing is left, temporaries included, and false is returned:
// an unwritable cache only costs a recompilation next time.
bool write_entry(const std::filesystem::path& data, const std::filesystem::path& meta, const std::string& key,
                 const std::string& contents, const std::string& info = "");

// Warnings raised on this thread since the last call (the bindings turn them into Python RuntimeWarnings).
std::vector<std::string> take_warnings();

}  // namespace keops
