#!/usr/bin/env bash
# Installs the system packages the build needs (a C++20 compiler, LLVM >= 14 dev files, Catch2) when missing.
set -euo pipefail
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
ls /usr/lib/llvm-*/lib/cmake/llvm/LLVMConfig.cmake >/dev/null 2>&1 || need+=(llvm-dev)
[ -e /usr/include/catch2/catch.hpp ] || [ -e /usr/include/catch2/catch_test_macros.hpp ] || need+=(catch2)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing system packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
