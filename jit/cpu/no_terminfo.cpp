// Terminfo stand-ins for the static LLVM: Debian's libtinfo.a is not position independent and the wheel may not
// need libtinfo.so. LLVM calls them only to ask whether a terminal has colours; "no terminal" makes it answer no.
extern "C" {
struct term;
int setupterm(const char*, int, int* err) {
  if (err) *err = -1;
  return -1;
}
int tigetnum(const char*) { return -2; }
term* set_curterm(term*) { return nullptr; }
int del_curterm(term*) { return -1; }
}
