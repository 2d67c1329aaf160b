// Files of the disk cache of compiled kernels (CPU objects and GPU cubins): names from keys, safe writes.
#pragma once
#include <filesystem>
#include <string>

namespace keops {

// SHA-256 of the engine's sources (generated at build time by cmake/source_hash.cmake): part of every disk-cache
// key, so that code compiled by another version of the code generators is never loaded.
extern const char* const kSourceHash;

// A stable 128-bit hex digest of a key, for file names (the key itself is stored and checked on load).
std::string key_digest(const std::string& key);

// The whole file, or "" if it cannot be read.
std::string read_file(const std::filesystem::path& path);

// Writes through a temporary file and a rename, so that concurrent processes never read half a file;
// failures are ignored (an unwritable cache only costs a recompilation next time).
void write_file(const std::filesystem::path& path, const std::string& data);

}  // namespace keops
