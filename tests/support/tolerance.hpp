// Tolerances for comparing float reductions (GEMM, convolution, inner products, LSTM gates)
// computed two ways: two kernels, a fast path against the dense path, float against a double
// oracle, one machine's OpenBLAS kernel (Haswell, SkylakeX, Zen, ...) against another's.
//
// Derivation. A float reduction r = sum_{k<K} a_k b_k evaluated in any order (recursive,
// blocked, pairwise, with or without FMA) satisfies (Higham, "Accuracy and Stability of
// Numerical Algorithms", 2nd ed., §3.1 and §3.5)
//   |fl(r) - r| <= gamma_K * M,   M = sum_k |a_k b_k|,   gamma_K = K u / (1 - K u),  u = eps / 2,
// with eps = FLT_EPSILON = 2^-23. Two such evaluations therefore differ by at most
// 2 gamma_K M ~= K eps M (a double oracle contributes nothing). We allow
//   |r - r_ref| <= c * K * eps * M + floor,   c = kReductionSlack = 2,  floor = kAbsFloor,
// i.e. twice the worst case of two float evaluations; the headroom covers a scale applied
// before rather than after the sum, and products rounded before the add when no FMA is used.
// Count an accumulation onto an existing value (beta = 1, a bias, a diff that starts nonzero)
// as one more term with its magnitude in M.
// This is a worst-case bound: real differences are nearer sqrt(K) eps M. A real bug (a wrong
// index, a dropped row, a missing scale) moves a result by the order of the values themselves,
// which stays far above c K eps M for the sizes used here (K up to ~10^4: c K eps ~ 2e-3).
// Results that pass through several reductions (a net, an LSTM over time) need the sum of the
// stages' K and the magnitude of the whole chain (see the tests that do this).
#pragma once
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dsg::test {

constexpr double kReductionSlack = 2.0;  // c above
constexpr double kAbsFloor = 1e-12;      // for entries whose every term is zero

// (a) The tolerance of one reduction of `terms` products whose absolute values sum to
// `magnitude` (M above).
inline double reduction_tolerance(int64_t terms, double magnitude) {
  return kReductionSlack * double(terms) * double(FLT_EPSILON) * magnitude + kAbsFloor;
}

// Accumulates the terms of one reduction as an oracle computes it, then gives its tolerance:
//   ReductionBound b; for (k...) { s += a[k] * w[k]; b.add(a[k] * w[k]); }  ... b.tolerance()
struct ReductionBound {
  int64_t terms = 0;
  double magnitude = 0;
  void add(double term) {
    ++terms;
    magnitude += std::fabs(term);
  }
  double tolerance() const { return reduction_tolerance(terms, magnitude); }
};

// (b) Elementwise tolerances for C = alpha op(A) op(B) + beta C0 computed in float, with the
// conventions of dsg::gemm: row-major, op(A) is M x K, op(B) is K x N, A is M x K (K x M when
// trans_a), B is K x N (N x K when trans_b). Entry (i, j) gets
//   reduction_tolerance(K + [beta != 0], |alpha| sum_k |op(A)_ik op(B)_kj| + |beta C0_ij|).
// Returns M * N tolerances, row-major. C0 may be null when beta == 0.
inline std::vector<double> gemm_tolerance(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                                          const float* B, float beta = 0.0f, const float* C0 = nullptr) {
  std::vector<double> tol(size_t(M) * N);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double m = 0;
      for (int k = 0; k < K; ++k) {
        const double a = trans_a ? A[size_t(k) * M + i] : A[size_t(i) * K + k];
        const double b = trans_b ? B[size_t(j) * K + k] : B[size_t(k) * N + j];
        m += std::fabs(a * b);
      }
      m *= std::fabs(double(alpha));
      const bool acc = beta != 0.0f;
      if (acc) m += std::fabs(double(beta) * C0[size_t(i) * N + j]);
      tol[size_t(i) * N + j] = reduction_tolerance(K + (acc ? 1 : 0), m);
    }
  return tol;
}

// Compares got[i] with want[i] within tol[i] for i < n; reports the first three mismatches
// (index, values, difference, tolerance) and returns how many there were. `Got`, `Want` and
// `Tol` are anything indexable (pointers, vectors) holding float or double.
template <typename Got, typename Want, typename Tol>
int count_outside(const char* what, int64_t n, const Got& got, const Want& want, const Tol& tol) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(got[i]), w = double(want[i]), t = double(tol[i]);
    if (!(std::fabs(g - w) <= t) && bad++ < 3) {
      INFO(what << " index " << i << ": got " << g << ", want " << w << ", |diff| " << std::fabs(g - w)
                << " > tolerance " << t);
      CHECK(std::fabs(g - w) <= t);
    }
  }
  return bad;
}

// count_outside as one assertion: CHECKs that no entry is outside its tolerance.
template <typename Got, typename Want, typename Tol>
void check_within(const char* what, int64_t n, const Got& got, const Want& want, const Tol& tol) {
  const int bad = count_outside(what, n, got, want, tol);
  INFO(what << ": " << bad << " of " << n << " entries outside the tolerance");
  CHECK(bad == 0);
}

}  // namespace dsg::test
