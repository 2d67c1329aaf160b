// Emits branch-free, vectorisable LLVM IR for exp, log, sin, cos, atan, atan2, asin, acos.
//
// Method: range reduction + minimax polynomial (coefficients fitted for this file by a weighted
// discrete-minimax LP in 50-digit arithmetic, then rounded to the target type one coefficient at a
// time, refitting the rest). Relative polynomial error before rounding: exp 2^-28 / 2^-58,
// log 2^-30 / 2^-59, sin/cos 2^-31 / 2^-63, atan 2^-30 / 2^-59, asin 2^-31 / 2^-60 (f32 / f64).
//
// accuracy (measured by tests/cpp/test_vec_math.cpp against long double libm), max error in ulp:
// "test" = its 0.4-0.9 M points per function (sweeps, random bit patterns over the whole domain,
// thresholds, subnormals, specials; scalar, 8- and 16-wide, unoptimised and O3); "all" = exhaustive
// over every float in the range (f32 only).
//   accuracy: exp   f32 max 0.89 ulp (all |x| <= 110, i.e. every x)   f64 max 0.83 ulp (test)
//   accuracy: log   f32 max 0.95 ulp (all x > 0)                       f64 max 0.90 ulp (test)
//   accuracy: sin   f32 max 1.49 ulp (all |x| <= 1e5), 1.67 (<= 1e6)   f64 max 1.41 ulp (test, |x| <= 1e12)
//   accuracy: cos   f32 max 1.49 ulp (all |x| <= 1e5), 1.81 (<= 1e6)   f64 max 1.44 ulp (test, |x| <= 1e12)
//   accuracy: atan  f32 max 0.66 ulp (all x)                           f64 max 0.57 ulp (test)
//   accuracy: atan2 f32 max 0.75 ulp (test)                            f64 max 0.73 ulp (test)
//   accuracy: asin  f32 max 0.64 ulp (all |x| <= 1)                    f64 max 0.62 ulp (test)
//   accuracy: acos  f32 max 0.61 ulp (all |x| <= 1)                    f64 max 0.60 ulp (test)
//
// sin/cos argument range: the 3-part Cody-Waite reduction by pi/2 keeps the errors above for
// |x| <= 1e6 (f32) and |x| <= 1e12 (f64; random sampling stays <= 1.5 ulp up to 1e14). Past that
// the rounded quotient x*2/pi and the 3-part pi/2 run out of bits: f32 has up to 2.1 ulp in
// [1e6, 2e6], 7.7 ulp in [2e6, 4e6] and is meaningless from ~1e7; f64 has up to 3.7 ulp in
// [1e14, 1e15] and is meaningless from ~1e16. The result always stays within [-1, 1] for finite x.

#include "vec_math.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/DerivedTypes.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>

#include <cassert>
#include <cmath>
#include <cstdint>
#include <limits>

namespace keops::cpu {
namespace {

using llvm::Value;

// ---- polynomial coefficients, lowest order first (see the header comment for how they were made) --

// The *F tables hold float values exactly (17 significant digits round-trip).

// exp(r) = 1 + r + sum_{j>=2} c_j r^j on |r| <= ln2/2
const double kExpF[] = {0.49999994039535522, 0.16666522622108459, 0.041668292135000229,
                        0.0083685321733355522, 0.0013818304287269711};
const double kExpD[] = {0.50000000000000111, 0.16666666666666466, 0.041666666666528802,
                        0.0083333333334701942, 0.0013888888943700273, 0.00019841269546286703,
                        2.4801493170415308e-05, 2.7557558440823958e-06, 2.7630195245613782e-07,
                        2.5007229964606249e-08};
// log(1+f) = 2s + s R(z), s = f/(2+f), z = s^2, R = sum_{j>=1} c_j z^j on |s| <= 0.1716
const double kLogF[] = {0.66666775941848755, 0.39977553486824036, 0.29872161149978638};
const double kLogD[] = {0.66666666666667351, 0.39999999999408786, 0.28571428743910882,
                        0.22222198397287879, 0.18183574405281092, 0.15313770235133078,
                        0.1479896672343757};
// sin(r) = r + r sum_{j>=1} c_j z^j, z = r^2; fitted on |r| <= 0.9 (f32, tolerates a mis-rounded
// quadrant for large |x|) and |r| <= pi/4 + 1e-3 (f64)
const double kSinF[] = {-0.1666666716337204, 0.0083333654329180717, -0.00019846434588544071,
                        2.7601772671914659e-06};
const double kSinD[] = {-0.16666666666666666, 0.0083333333333330418, -0.00019841269840962473,
                        2.7557319073985264e-06, -2.505207092368129e-08, 1.6054311699147045e-10,
                        -7.3894715280001664e-13};
// cos(r) = 1 - z/2 + sum_{j>=2} c_j z^j (same intervals as sin)
const double kCosF[] = {0.041666619479656219, -0.0013886187225580215, 2.4318827854585834e-05};
const double kCosD[] = {0.041666666666666595, -0.0013888888888873296, 2.4801587288953842e-05,
                        -2.7557314198802829e-07, 2.0875702453063362e-09, -1.1358577005973915e-11};
// atan(t) = t + t sum_{j>=1} c_j z^j, z = t^2, on |t| <= tan(pi/8)
const double kAtanF[] = {-0.33333316445350647, 0.19998528063297272, -0.14244391024112701,
                         0.1059916689991951, -0.060900419950485229};
const double kAtanD[] = {-0.33333333333333198, 0.19999999999953655, -0.14285714280196846,
                         0.11111110783328722, -0.090908977521872741, 0.076920601065654001,
                         -0.066631028321626234, 0.058478810233402255, -0.050392711236510845,
                         0.038063819407194756, -0.017906530368390152};
// asin(s) = s + s sum_{j>=1} c_j z^j, z = s^2, on |s| <= 1/2
const double kAsinF[] = {0.16666659712791443, 0.075005218386650085, 0.044513382017612457,
                         0.031838845461606979, 0.01431689877063036, 0.037691917270421982};
const double kAsinD[] = {0.1666666666666676, 0.074999999999708647, 0.044642857174562942,
                         0.030381942709751183, 0.022372214939437973, 0.017351612785797606,
                         0.013980812146613956, 0.011398975408995345, 0.01077992411063845,
                         0.0037075698342338209, 0.021704787905870597, -0.020995500814095156,
                         0.032626505687434582};

// ---- constants split into a leading part and the rest, in the target type ----
struct Split2 {
  double f1, f2, d1, d2;
};
constexpr Split2 kLn2 = {0.69314718246459961, -1.9046542121259336e-09, 0.69314718055994529,
                         2.3190468138462996e-17};
// ln2 with a 16 / 42-bit leading part: k * lead is exact for every binary exponent k of log's input
constexpr Split2 kLn2Short = {0.693145751953125, 1.428606765330187e-06, 0.69314718055989033,
                              5.4979230187083712e-14};
// pi/4 with a 22-bit (f32) leading part so that 3 * lead is exact too
constexpr Split2 kPio4 = {0.78539824485778809, -8.1460342471473268e-08, 0.78539816339744828,
                          3.061616997868383e-17};
constexpr Split2 kPio2 = {1.5707963705062866, -4.3711388286737929e-08, 1.5707963267948966,
                          6.123233995736766e-17};
constexpr Split2 kPi = {3.1415927410125732, -8.7422776573475858e-08, 3.1415926535897931,
                        1.2246467991473532e-16};
// pi/2 in three parts for the sin/cos reduction
constexpr double kPio2F[3] = {1.5707963705062866, -4.3711388286737929e-08, -1.7151245100058819e-15};
constexpr double kPio2D[3] = {1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33};

template <size_t N>
constexpr int len(const double (&)[N]) {
  return static_cast<int>(N);
}

// Thin typed wrapper over the builder: every constant is splatted to x's type, integer ops use the
// same-shaped integer type, so each helper works for scalars and vectors alike.
class Em {
 public:
  Em(llvm::IRBuilderBase& b, llvm::Type* ty) : b_(b), guard_(b), ty_(ty) {
    b_.clearFastMathFlags();  // NaN/inf handling below needs IEEE semantics
    llvm::Type* el = ty->getScalarType();
    assert((el->isFloatTy() || el->isDoubleTy()) && "vec_math: float or double (vector) expected");
    dbl = el->isDoubleTy();
    bits = dbl ? 64 : 32;
    mant = dbl ? 52 : 23;
    bias = dbl ? 1023 : 127;
    if (auto* vt = llvm::dyn_cast<llvm::VectorType>(ty)) {
      ity_ = llvm::VectorType::getInteger(vt);
      i32ty_ = llvm::VectorType::get(b_.getInt32Ty(), vt->getElementCount());
    } else {
      ity_ = b_.getIntNTy(bits);
      i32ty_ = b_.getInt32Ty();
    }
  }

  bool dbl;
  int bits, mant, bias;

  Value* c(double v) { return llvm::ConstantFP::get(ty_, v); }
  Value* c(const Split2& s, int part) { return c(part == 0 ? (dbl ? s.d1 : s.f1) : (dbl ? s.d2 : s.f2)); }
  Value* inf() { return c(std::numeric_limits<double>::infinity()); }
  Value* nan() { return c(std::numeric_limits<double>::quiet_NaN()); }
  Value* ci(int64_t v) { return llvm::ConstantInt::get(ity_, static_cast<uint64_t>(v), true); }

  Value* add(Value* a, Value* b) { return b_.CreateFAdd(a, b); }
  Value* sub(Value* a, Value* b) { return b_.CreateFSub(a, b); }
  Value* mul(Value* a, Value* b) { return b_.CreateFMul(a, b); }
  Value* div(Value* a, Value* b) { return b_.CreateFDiv(a, b); }
  Value* neg(Value* a) { return b_.CreateFNeg(a); }
  // fma: exact product, used where exactness matters; mad: fused when profitable (polynomials)
  Value* fma(Value* a, Value* b, Value* c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fma, {ty_}, {a, b, c});
  }
  Value* mad(Value* a, Value* b, Value* c) {
    return b_.CreateIntrinsic(llvm::Intrinsic::fmuladd, {ty_}, {a, b, c});
  }
  Value* un(llvm::Intrinsic::ID id, Value* a) { return b_.CreateUnaryIntrinsic(id, a); }
  Value* abs(Value* a) { return un(llvm::Intrinsic::fabs, a); }
  Value* rint(Value* a) { return un(llvm::Intrinsic::rint, a); }
  Value* floor(Value* a) { return un(llvm::Intrinsic::floor, a); }
  Value* sqrt(Value* a) { return un(llvm::Intrinsic::sqrt, a); }
  Value* copysign(Value* mag, Value* sgn) {
    return b_.CreateBinaryIntrinsic(llvm::Intrinsic::copysign, mag, sgn);
  }

  Value* sel(Value* cnd, Value* a, Value* b) { return b_.CreateSelect(cnd, a, b); }
  Value* lt(Value* a, Value* b) { return b_.CreateFCmpOLT(a, b); }
  Value* gt(Value* a, Value* b) { return b_.CreateFCmpOGT(a, b); }
  Value* eq(Value* a, Value* b) { return b_.CreateFCmpOEQ(a, b); }
  Value* isnan(Value* a) { return b_.CreateFCmpUNO(a, a); }
  Value* land(Value* a, Value* b) { return b_.CreateAnd(a, b); }
  llvm::IRBuilderBase& b() { return b_; }
  Value* lor(Value* a, Value* b) { return b_.CreateOr(a, b); }

  Value* as_int(Value* a) { return b_.CreateBitCast(a, ity_); }
  Value* as_fp(Value* a) { return b_.CreateBitCast(a, ty_); }
  Value* iadd(Value* a, Value* b) { return b_.CreateAdd(a, b); }
  Value* isub(Value* a, Value* b) { return b_.CreateSub(a, b); }
  Value* iand(Value* a, Value* b) { return b_.CreateAnd(a, b); }
  Value* ixor(Value* a, Value* b) { return b_.CreateXor(a, b); }
  Value* shl(Value* a, int n) { return b_.CreateShl(a, static_cast<uint64_t>(n)); }
  Value* ashr(Value* a, int n) { return b_.CreateAShr(a, static_cast<uint64_t>(n)); }
  Value* sign_bit_set(Value* a) { return b_.CreateICmpSLT(as_int(a), ci(0)); }
  // fp <-> int through i32 lanes: cvt(t)ps2dq / cvt(t)pd2dq exist everywhere, 64-bit lane
  // conversions would need AVX-512DQ. Callers guarantee |v| < 2^31 and no NaN (else poison).
  Value* to_int(Value* v) {
    Value* i = b_.CreateFPToSI(v, i32ty_);
    return dbl ? b_.CreateSExt(i, ity_) : i;
  }
  Value* to_fp(Value* i) { return b_.CreateSIToFP(dbl ? b_.CreateTrunc(i, i32ty_) : i, ty_); }

  // c[0] + x (c[1] + x (...))
  Value* horner(Value* x, const double* cf, int n) {
    Value* acc = c(cf[n - 1]);
    for (int k = n - 2; k >= 0; --k) acc = mad(acc, x, c(cf[k]));
    return acc;
  }
  template <size_t NF, size_t ND>
  Value* horner(Value* x, const double (&f)[NF], const double (&d)[ND]) {
    return dbl ? horner(x, d, len(d)) : horner(x, f, len(f));
  }

 private:
  llvm::IRBuilderBase& b_;
  llvm::IRBuilderBase::FastMathFlagGuard guard_;
  llvm::Type* ty_;
  llvm::Type* ity_;
  llvm::Type* i32ty_;
};

// sin (cosine = false) or cos of x: reduce x = q pi/2 + r, |r| <~ pi/4, then pick the sin or cos
// polynomial and the sign from q mod 4.
Value* emit_sincos(llvm::IRBuilderBase& b, Value* x, bool cosine) {
  Em e(b, x->getType());
  // Non-finite lanes are zeroed so every lane below stays well defined; they become NaN at the end.
  Value* fin = e.lt(e.abs(x), e.inf());
  Value* xs = e.sel(fin, x, e.c(0));
  Value* q = e.rint(e.mul(xs, e.c(0.63661977236758134)));  // 2/pi
  Value* nq = e.neg(q);
  const double* p = e.dbl ? kPio2D : kPio2F;
  // Cody-Waite: the first fma is exact (for q != 0, x and q*p[0] lie on a common grid of spacing
  // min(ulp(x), ulp(p[0])) and differ by less than 1); the next two add the tail of pi/2 with one
  // rounding each, relative to r.
  Value* r = e.fma(nq, e.c(p[0]), xs);
  r = e.fma(nq, e.c(p[1]), r);
  r = e.fma(nq, e.c(p[2]), r);
  // q mod 4 computed in floating point (exact for integral q, any magnitude): fptosi of a huge q
  // would be poison.
  Value* qm = e.fma(e.floor(e.mul(q, e.c(0.25))), e.c(-4.0), q);
  Value* qi = e.to_int(qm);
  if (cosine) qi = e.iadd(qi, e.ci(1));

  Value* z = e.mul(r, r);
  Value* sin_r = e.mad(e.mul(r, z), e.horner(z, kSinF, kSinD), r);
  // cos: w = 1 - z/2 rounded, and the tail recovers both w's rounding error and that of z = r*r,
  // so the result is rounded essentially once.
  Value* hz = e.mul(z, e.c(0.5));
  Value* hz_lo = e.mul(e.fma(r, r, e.neg(z)), e.c(0.5));
  Value* w = e.sub(e.c(1.0), hz);
  Value* tail = e.sub(e.sub(e.sub(e.c(1.0), w), hz), hz_lo);
  tail = e.mad(e.mul(z, z), e.horner(z, kCosF, kCosD), tail);
  Value* cos_r = e.add(w, tail);

  Value* odd = b.CreateICmpNE(e.iand(qi, e.ci(1)), e.ci(0));
  Value* res = e.sel(odd, cos_r, sin_r);
  Value* flip = e.shl(e.iand(qi, e.ci(2)), e.bits - 2);  // bit 1 of the quadrant -> sign bit
  res = e.as_fp(e.ixor(e.as_int(res), flip));
  // Beyond the documented range r can be huge; keep the (meaningless) result inside [-1, 1].
  res = e.sel(b.CreateFCmpUGT(res, e.c(1.0)), e.c(1.0), res);
  res = e.sel(b.CreateFCmpULT(res, e.c(-1.0)), e.c(-1.0), res);
  if (!cosine) res = e.sel(e.eq(x, e.c(0)), x, res);  // sin(-0) = -0 (the reduction gives +0)
  return e.sel(fin, res, e.nan());
}

// a + b rounded, and its exact rounding error (TwoSum, no magnitude precondition).
struct Sum2 {
  Value* hi;
  Value* lo;
};
Sum2 two_sum(Em& e, Value* a, Value* b) {
  Value* s = e.add(a, b);
  Value* bb = e.sub(s, a);
  return {s, e.add(e.sub(a, e.sub(s, bb)), e.sub(b, bb))};
}

// First-quadrant angle of the point (ax, ay), ax, ay >= 0 and not both 0 or inf, as
// k*pi/4 + t + tail with k in {0,1,2}: the ratio t is reduced to |t| <= tan(pi/8) via
//   atan(r) = pi/4 + atan((r-1)/(r+1)) and atan(r) = pi/2 - atan(1/r).
// The rounding errors of ay -+ ax and of the division are carried in tail, so t acts as an
// extra-precise argument and the atan error is no longer dominated by the reduction.
struct AtanParts {
  Value* k;
  Value* t;
  Value* tail;
};
AtanParts atan_core(Em& e, Value* ay, Value* ax) {
  Value* big = e.gt(ay, e.mul(ax, e.c(2.4142135623730951)));  // ay/ax > tan(3pi/8)
  Value* mid = e.land(e.gt(ay, e.mul(ax, e.c(0.41421356237309503))), e.b().CreateNot(big));
  Sum2 diff = two_sum(e, ay, e.neg(ax));
  Sum2 sum = two_sum(e, ay, ax);
  Value* num = e.sel(big, e.neg(ax), e.sel(mid, diff.hi, ay));
  Value* den = e.sel(big, ay, e.sel(mid, sum.hi, ax));
  Value* num_lo = e.sel(mid, diff.lo, e.c(0));
  Value* den_lo = e.sel(mid, sum.lo, e.c(0));
  Value* t = e.div(num, den);
  // t_lo = (num + num_lo - t (den + den_lo)) / den, the fma residual being exact; an infinite den
  // (t = 0 exactly) would give inf*0 here, hence the guard.
  Value* resid = e.mad(e.neg(t), den_lo, e.add(e.fma(e.neg(t), den, num), num_lo));
  Value* t_lo = e.sel(e.lt(den, e.inf()), e.div(resid, den), e.c(0));
  Value* k = e.sel(big, e.c(2.0), e.sel(mid, e.c(1.0), e.c(0.0)));
  Value* z = e.mul(t, t);
  // atan(t + t_lo) = atan(t) + t_lo / (1 + t^2) + O(t_lo^2)
  Value* tail = e.mad(e.mul(t, z), e.horner(z, kAtanF, kAtanD), e.mad(e.neg(t_lo), z, t_lo));
  return {k, t, tail};
}

// c + w + tail for |c| >= |w| or c = 0, c and w exact: the rounding error of c + w is recovered
// exactly (Fast2Sum) and folded into the tail, so the sum is rounded essentially once.
Value* fast_sum(Em& e, Value* c, Value* w, Value* tail) {
  Value* d = e.add(c, w);
  Value* err = e.add(e.sub(c, d), w);
  return e.add(d, e.add(err, tail));
}

// k*pi/4 + t + tail for integral k in [0, 4] and |t| <= tan(pi/8): pi/4's leading part has two
// trailing zero bits so that k times it is exact.
Value* quarter_pi_plus(Em& e, Value* k, Value* t, Value* tail) {
  return fast_sum(e, e.mul(k, e.c(kPio4, 0)), t, e.mad(k, e.c(kPio4, 1), tail));
}

// asin(|x|) for |x| <= 1 as u + v, u the leading part and v a small tail:
//   |x| <= 1/2: u = |x|, v = |x| z P(z), z = x^2
//   |x| >  1/2: asin(|x|) = pi/2 - 2 asin(s), s = sqrt((1-|x|)/2); here u = 2s and v = 2(s_lo + s z P(z))
//              with z = s^2 exact and s_lo the rounding error of the sqrt (so 2s carries extra bits).
// big says which branch each lane took (big lanes still need pi/2 - (u + v)).
struct AsinParts {
  Value* big;
  Value* u;
  Value* v;
};
AsinParts asin_core(Em& e, Value* a) {
  Value* big = e.gt(a, e.c(0.5));
  Value* zb = e.mul(e.sub(e.c(1.0), a), e.c(0.5));  // exact for a in [1/2, 1]
  Value* s = e.sqrt(zb);
  Value* ds = e.sel(e.eq(s, e.c(0)), e.c(1.0), s);  // avoid 0/0 at |x| = 1
  Value* s_lo = e.div(e.fma(e.neg(s), s, zb), e.mul(ds, e.c(2.0)));
  Value* z = e.sel(big, zb, e.mul(a, a));
  Value* ss = e.sel(big, s, a);
  Value* tail = e.mul(e.mul(ss, z), e.horner(z, kAsinF, kAsinD));
  Value* u = e.sel(big, e.mul(s, e.c(2.0)), a);
  Value* v = e.sel(big, e.mul(e.add(s_lo, tail), e.c(2.0)), tail);
  return {big, u, v};
}

}  // namespace

Value* emit_exp(llvm::IRBuilderBase& b, Value* x) {
  Em e(b, x->getType());
  // Clamp to a range that already overflows / underflows to 0 at its ends, so 2^n below stays
  // within the split scaling; NaN lanes are zeroed (fptosi of NaN is poison) and restored at the end.
  const double hi = e.dbl ? 710.0 : 89.0, lo = e.dbl ? -746.0 : -104.0;
  Value* is_nan = e.isnan(x);
  Value* xc = e.sel(is_nan, e.c(0), x);
  xc = e.sel(e.gt(xc, e.c(hi)), e.c(hi), xc);
  xc = e.sel(e.lt(xc, e.c(lo)), e.c(lo), xc);
  // x = n ln2 + r, |r| <= ln2/2; the first fma is exact, the second adds ln2's tail.
  Value* n = e.rint(e.mul(xc, e.c(1.4426950408889634)));
  Value* nn = e.neg(n);
  Value* r = e.fma(nn, e.c(kLn2, 0), xc);
  r = e.fma(nn, e.c(kLn2, 1), r);
  // exp(r) = 1 + r (1 + r (c2 + ...)): the last fma rounds once.
  Value* poly = e.mad(e.horner(r, kExpF, kExpD), r, e.c(1.0));
  poly = e.mad(poly, r, e.c(1.0));
  // 2^n as two factors 2^(n/2) and 2^(n - n/2), each a normal number built from exponent bits:
  // this covers n up to the overflow side and down into subnormal results, where the second
  // multiplication rounds once (gradual underflow).
  Value* ni = e.to_int(n);
  Value* n1 = e.ashr(ni, 1);
  Value* n2 = e.isub(ni, n1);
  Value* s1 = e.as_fp(e.shl(e.iadd(n1, e.ci(e.bias)), e.mant));
  Value* s2 = e.as_fp(e.shl(e.iadd(n2, e.ci(e.bias)), e.mant));
  Value* res = e.mul(e.mul(poly, s1), s2);
  return e.sel(is_nan, e.add(x, x), res);
}

Value* emit_log(llvm::IRBuilderBase& b, Value* x) {
  Em e(b, x->getType());
  // Subnormals are scaled into the normal range first; the exponent is corrected below.
  const int sub_shift = e.dbl ? 54 : 24;
  Value* tiny = e.lt(x, e.c(std::ldexp(1.0, e.dbl ? -1022 : -126)));
  Value* xs = e.sel(tiny, e.mul(x, e.c(std::ldexp(1.0, sub_shift))), x);
  // x = 2^k m with m in [sqrt(1/2), sqrt(2)): offsetting the bits by those of sqrt(1/2) makes the
  // exponent field count from there, so one shift and one mask give k and m.
  const int64_t k_sqrt_half = e.dbl ? 0x3fe6a09e667f3bcdLL : 0x3f3504f3LL;
  Value* ix = e.isub(e.as_int(xs), e.ci(k_sqrt_half));
  Value* k = e.iadd(e.ashr(ix, e.mant), e.sel(tiny, e.ci(-sub_shift), e.ci(0)));
  Value* m = e.as_fp(e.iadd(e.iand(ix, e.ci((int64_t(1) << e.mant) - 1)), e.ci(k_sqrt_half)));
  // log(1+f) = 2 atanh(s) = 2s + s R(z) with s = f/(2+f); since 2s = f - s f this is
  // f - s (f - R): f is exact and the correction O(f^2).
  Value* f = e.sub(m, e.c(1.0));
  Value* s = e.div(f, e.add(f, e.c(2.0)));
  Value* z = e.mul(s, s);
  Value* rz = e.mul(z, e.horner(z, kLogF, kLogD));
  Value* corr = e.mul(e.neg(s), e.sub(f, rz));
  // k ln2 + f + corr: k times ln2's short leading part is exact and dominates f unless k = 0, so
  // the rounding error of the main sum is recovered and the result is rounded about once.
  Value* kf = e.to_fp(k);
  Value* res = fast_sum(e, e.mul(kf, e.c(kLn2Short, 0)), f, e.mad(kf, e.c(kLn2Short, 1), corr));
  res = e.sel(e.eq(x, e.c(0)), e.neg(e.inf()), res);
  res = e.sel(e.lt(x, e.c(0)), e.nan(), res);
  res = e.sel(e.eq(x, e.inf()), e.inf(), res);
  return e.sel(e.isnan(x), e.add(x, x), res);
}

Value* emit_sin(llvm::IRBuilderBase& b, Value* x) { return emit_sincos(b, x, false); }
Value* emit_cos(llvm::IRBuilderBase& b, Value* x) { return emit_sincos(b, x, true); }

Value* emit_atan(llvm::IRBuilderBase& b, Value* x) {
  Em e(b, x->getType());
  // atan(|x|) = atan2(|x|, 1): inf gives t = -0 and pi/2, NaN propagates through t.
  AtanParts ap = atan_core(e, e.abs(x), e.c(1.0));
  return e.copysign(quarter_pi_plus(e, ap.k, ap.t, ap.tail), x);
}

Value* emit_atan2(llvm::IRBuilderBase& b, Value* y, Value* x) {
  Em e(b, x->getType());
  assert(y->getType() == x->getType() && "emit_atan2: y and x must have the same type");
  Value* ax = e.abs(x);
  Value* ay = e.abs(y);
  // (0,0) and (inf,inf) have no ratio: map them to (1,0) -> angle 0 and (1,1) -> angle pi/4.
  Value* both_inf = e.land(e.eq(ax, e.inf()), e.eq(ay, e.inf()));
  Value* both_zero = e.land(e.eq(ax, e.c(0)), e.eq(ay, e.c(0)));
  ax = e.sel(e.lor(both_inf, both_zero), e.c(1.0), ax);
  ay = e.sel(both_inf, e.c(1.0), ay);
  // Exact power-of-2 rescaling: by 1/4 when either is large so that ay + ax cannot overflow (a
  // tiny partner losing bits has a ratio that underflows anyway), and up when both are tiny so
  // that the residuals in atan_core stay exact.
  const double large = std::ldexp(1.0, e.dbl ? 1021 : 125);
  const double tiny = std::ldexp(1.0, e.dbl ? -511 : -64), up = std::ldexp(1.0, e.dbl ? 600 : 88);
  Value* scale = e.sel(e.land(e.lt(ax, e.c(tiny)), e.lt(ay, e.c(tiny))), e.c(up), e.c(1.0));
  scale = e.sel(e.lor(e.gt(ax, e.c(large)), e.gt(ay, e.c(large))), e.c(0.25), scale);
  AtanParts ap = atan_core(e, e.mul(ay, scale), e.mul(ax, scale));
  // x < 0 (including -0): angle = pi - (k pi/4 + t + tail) = (4 - k) pi/4 - t - tail.
  Value* xneg = e.sign_bit_set(x);
  Value* k = e.sel(xneg, e.sub(e.c(4.0), ap.k), ap.k);
  Value* t = e.sel(xneg, e.neg(ap.t), ap.t);
  Value* tail = e.sel(xneg, e.neg(ap.tail), ap.tail);
  Value* res = e.copysign(quarter_pi_plus(e, k, t, tail), y);
  return e.sel(e.lor(e.isnan(x), e.isnan(y)), e.add(x, y), res);
}

Value* emit_asin(llvm::IRBuilderBase& b, Value* x) {
  Em e(b, x->getType());
  Value* a = e.abs(x);
  AsinParts ap = asin_core(e, a);
  Value* big_res = fast_sum(e, e.c(kPio2, 0), e.neg(ap.u), e.sub(e.c(kPio2, 1), ap.v));
  Value* res = e.copysign(e.sel(ap.big, big_res, e.add(ap.u, ap.v)), x);
  return e.sel(e.gt(a, e.c(1.0)), e.nan(), res);  // NaN already propagates through a
}

Value* emit_acos(llvm::IRBuilderBase& b, Value* x) {
  Em e(b, x->getType());
  Value* a = e.abs(x);
  AsinParts ap = asin_core(e, a);
  // With asin(|x|) = u + v and sign folded in (us, vs):
  //   |x| <= 1/2: acos = pi/2 - asin(x)                 = (pi/2 - us) + (pi/2_lo - vs)
  //   |x| >  1/2: acos = 2 asin(s)       (x > 0)        = (0 + u) + (0 + v)
  //               acos = pi - 2 asin(s)  (x < 0)        = (pi - u) + (pi_lo - v)
  Value* xneg = e.lt(x, e.c(0));
  Value* us = e.sel(xneg, e.neg(ap.u), ap.u);
  Value* vs = e.sel(xneg, e.neg(ap.v), ap.v);
  Value* wu = e.sel(ap.big, us, e.neg(us));
  Value* wv = e.sel(ap.big, vs, e.neg(vs));
  Value* d1 = e.sel(ap.big, e.sel(xneg, e.c(kPi, 0), e.c(0)), e.c(kPio2, 0));
  Value* d2 = e.sel(ap.big, e.sel(xneg, e.c(kPi, 1), e.c(0)), e.c(kPio2, 1));
  Value* res = fast_sum(e, d1, wu, e.add(d2, wv));
  return e.sel(e.gt(a, e.c(1.0)), e.nan(), res);
}

}  // namespace keops::cpu
