#!/usr/bin/env bash
# Installs clang with its libFuzzer and sanitizer runtimes (make fuzz) when $1 (default clang++) cannot link a fuzzer.
set -euo pipefail
cxx=${1:-clang++}
probe() {
  echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
    "$cxx" -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null >/dev/null 2>&1
}
if ! probe; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing system packages: clang libclang-rt-dev"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-rt-dev >/dev/null
  probe || { echo "$cxx cannot build a libFuzzer target (-fsanitize=fuzzer)" >&2; exit 1; }
fi
