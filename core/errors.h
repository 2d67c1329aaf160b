// The two error channels: UserError for a caller's mistake, InternalError for a broken invariant.
#pragma once
#include <stdexcept>
#include <string>

namespace keops {

// A mistake in what the user wrote (formula, aliases, dims, arguments). Becomes ValueError in Python.
struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A formula or option that is valid KeOps but not implemented here yet. Becomes NotImplementedError.
struct NotSupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An invariant of the engine itself failed: names file and line. Becomes RuntimeError.
struct InternalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void internal_failure(const char* file, int line, const std::string& what);

}  // namespace keops

#define KEOPS_ASSERT(cond, what) \
  do { if (!(cond)) ::keops::internal_failure(__FILE__, __LINE__, (what)); } while (0)
