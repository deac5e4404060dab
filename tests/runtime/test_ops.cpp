// The CPU DeviceOps (the oracle) against naive loops. Reductions and GEMMs are checked with
// |err| <= 2 K FLT_EPSILON sum_k |a_k b_k| (K the reduction length); elementwise ops exactly.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "runtime/device.hpp"
#include "support/gradient_checker.hpp"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/rng.hpp"

using namespace dsg;

namespace {

const DeviceOps& ops = cpu_ops();

}  // namespace

TEST_CASE("ops_for gives the CPU ops for the CPU and refuses a missing CUDA device", "[ops]") {
  CHECK(&ops_for(Device::cpu()) == &cpu_ops());
  CHECK(cpu_ops().device().type == DeviceType::CPU);
  std::string reason;
  if (cuda_device_count(&reason) == 0) CHECK_THROWS_AS(ops_for(Device::cuda(0)), Error);
}

TEST_CASE("gemm matches a naive product for every transpose and strided views", "[ops][gemm]") {
  const int M = 5, N = 7, K = 9, pad = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Stored shapes: A is [M,K] or [K,M], B is [K,N] or [N,K]; rows padded by `pad`.
      const int a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
      const int lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
      std::vector<float> A = test::uniform_vector(size_t(a_rows) * lda, 1), B = test::uniform_vector(size_t(b_rows) * ldb, 2);
      std::vector<float> C = test::uniform_vector(size_t(M) * ldc, 3), C0 = C;
      const float alpha = 0.75f, beta = -0.5f;
      ops.gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
      for (int i = 0; i < M; ++i) {
        for (int j = 0; j < N; ++j) {
          double ref = 0, mag = 0;
          for (int k = 0; k < K; ++k) {
            const double a = ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k];
            const double b = tb ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j];
            ref += a * b;
            mag += std::fabs(a * b);
          }
          const double c0 = C0[size_t(i) * ldc + j];
          ref = alpha * ref + beta * c0;
          const double tol = 2 * (K + 2) * FLT_EPSILON * (std::fabs(alpha) * mag + std::fabs(beta * c0));
          INFO("ta " << ta << " tb " << tb << " at " << i << "," << j);
          CHECK(std::fabs(C[size_t(i) * ldc + j] - ref) <= tol);
        }
        for (int j = N; j < ldc; ++j) CHECK(C[size_t(i) * ldc + j] == C0[size_t(i) * ldc + j]);  // padding kept
      }
    }
}

TEST_CASE("axpy, scale, fill and copy are exact", "[ops]") {
  std::vector<float> x = test::uniform_vector(37, 4), y = test::uniform_vector(37, 5), y0 = y;
  ops.axpy(37, 0.5f, x.data(), y.data());
  for (int i = 0; i < 37; ++i) CHECK(y[i] == y0[i] + 0.5f * x[i]);
  std::vector<float> s = x;
  ops.scale(37, -2.0f, s.data());
  for (int i = 0; i < 37; ++i) CHECK(s[i] == -2.0f * x[i]);
  ops.fill(37, 3.5f, s.data());
  for (float v : s) CHECK(v == 3.5f);
  ops.fill(37, 0.0f, s.data());
  for (float v : s) CHECK(v == 0.0f);
  ops.copy(37, x.data(), s.data());
  CHECK(s == x);
}

TEST_CASE("row and column gathers and scatters follow the index list", "[ops][gather]") {
  const int rows = 6, cols = 5, ld = 8;
  std::vector<float> src = test::uniform_vector(size_t(rows) * ld, 6);
  const std::vector<int> rix{4, 0, 2}, cix{3, 1};
  std::vector<float> g(rix.size() * cols);
  ops.gather_rows(int(rix.size()), cols, src.data(), ld, rix.data(), g.data());
  for (size_t r = 0; r < rix.size(); ++r)
    for (int c = 0; c < cols; ++c) CHECK(g[r * cols + c] == src[size_t(rix[r]) * ld + c]);

  std::vector<float> dst(size_t(rows) * ld, 1.0f);
  ops.scatter_rows(int(rix.size()), cols, g.data(), rix.data(), dst.data(), ld, false);
  for (size_t r = 0; r < rix.size(); ++r)
    for (int c = 0; c < cols; ++c) CHECK(dst[size_t(rix[r]) * ld + c] == g[r * cols + c]);
  CHECK(dst[size_t(1) * ld] == 1.0f);
  ops.scatter_rows(int(rix.size()), cols, g.data(), rix.data(), dst.data(), ld, true);
  CHECK(dst[size_t(rix[0]) * ld + 1] == 2 * g[1]);

  std::vector<float> gc(size_t(rows) * cix.size());
  ops.gather_cols(rows, int(cix.size()), src.data(), ld, cix.data(), gc.data());
  for (int r = 0; r < rows; ++r)
    for (size_t c = 0; c < cix.size(); ++c) CHECK(gc[r * cix.size() + c] == src[size_t(r) * ld + cix[c]]);
  std::vector<float> dc(size_t(rows) * ld, 0.0f);
  ops.scatter_cols(rows, int(cix.size()), gc.data(), cix.data(), dc.data(), ld, false);
  ops.scatter_cols(rows, int(cix.size()), gc.data(), cix.data(), dc.data(), ld, true);
  for (int r = 0; r < rows; ++r) {
    CHECK(dc[size_t(r) * ld + 3] == 2 * src[size_t(r) * ld + 3]);
    CHECK(dc[size_t(r) * ld + 0] == 0.0f);
  }
}

TEST_CASE("bias broadcast and column sums", "[ops]") {
  const int rows = 9, cols = 4;
  std::vector<float> b = test::uniform_vector(cols, 7), y(size_t(rows) * cols);
  ops.broadcast_rows(rows, cols, b.data(), y.data());
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) CHECK(y[size_t(r) * cols + c] == b[c]);
  std::vector<float> x = test::uniform_vector(size_t(rows) * cols, 8), s = test::uniform_vector(cols, 9), s0 = s;
  ops.column_sums(rows, cols, x.data(), s.data());
  for (int c = 0; c < cols; ++c) {
    double ref = s0[c], mag = std::fabs(s0[c]);
    for (int r = 0; r < rows; ++r) ref += x[size_t(r) * cols + c], mag += std::fabs(x[size_t(r) * cols + c]);
    CHECK(std::fabs(s[c] - ref) <= 2 * (rows + 1) * FLT_EPSILON * mag);
  }
}

TEST_CASE("ReLU maps with negative_slope, forward and backward, in place too", "[ops][relu]") {
  for (float slope : {0.0f, 0.1f}) {
    std::vector<float> x = test::uniform_vector(1000, 10), y(1000), dy = test::uniform_vector(1000, 11), dx(1000);
    ops.relu_forward(1000, slope, x.data(), y.data());
    for (int i = 0; i < 1000; ++i) CHECK(y[i] == (x[i] > 0 ? x[i] : slope * x[i]));
    ops.relu_backward(1000, slope, y.data(), dy.data(), dx.data());
    for (int i = 0; i < 1000; ++i) CHECK(dx[i] == (y[i] > 0 ? dy[i] : slope * dy[i]));
    std::vector<float> inplace = x;
    ops.relu_forward(1000, slope, inplace.data(), inplace.data());
    CHECK(inplace == y);
  }
}

TEST_CASE("masks, codebook lookups and per-code scales", "[ops][mask]") {
  std::vector<float> x = test::uniform_vector(50, 12), m = x;
  std::vector<uint8_t> mask(50), codes(50);
  for (int i = 0; i < 50; ++i) mask[i] = uint8_t(i % 3 != 0), codes[i] = uint8_t(i % 4);
  ops.apply_mask(50, mask.data(), m.data());
  for (int i = 0; i < 50; ++i) CHECK(m[i] == (mask[i] ? x[i] : 0.0f));
  const std::vector<float> table{0.0f, 1.5f, -2.0f, 0.25f};
  std::vector<float> y(50);
  ops.lookup(50, codes.data(), table.data(), 4, y.data());
  for (int i = 0; i < 50; ++i) CHECK(y[i] == table[codes[i]]);
  std::vector<float> s = x;
  ops.scale_by_code(50, codes.data(), table.data(), 4, s.data());
  for (int i = 0; i < 50; ++i) CHECK(s[i] == x[i] * table[codes[i]]);
  std::vector<double> sums(4);
  ops.sum_by_code(50, codes.data(), x.data(), 4, sums.data());
  for (int c = 0; c < 4; ++c) {
    double ref = 0;
    for (int i = 0; i < 50; ++i) ref += codes[i] == c ? x[i] : 0.0;
    CHECK(sums[size_t(c)] == Approx(ref).margin(1e-12));
  }
  CHECK_THROWS_AS(ops.sum_by_code(50, codes.data(), x.data(), 3, sums.data()), Error);
}

TEST_CASE("softmax and its loss match double-precision references", "[ops][softmax]") {
  const int64_t outer = 3, C = 5, inner = 2;
  std::vector<float> x = test::uniform_vector(size_t(outer * C * inner), 13, -4.0f, 4.0f), p(x.size());
  ops.softmax(outer, C, inner, x.data(), p.data());
  std::vector<double> ref(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      double z = 0;
      for (int64_t c = 0; c < C; ++c) z += std::exp(double(x[size_t((o * C + c) * inner + j)]));
      for (int64_t c = 0; c < C; ++c) {
        const size_t at = size_t((o * C + c) * inner + j);
        ref[at] = std::exp(double(x[at])) / z;
        CHECK(p[at] == Approx(ref[at]).epsilon(1e-5));
      }
    }
  // Labels per position (outer * inner); label 7 is ignored.
  const std::vector<float> label{0, 4, 7, 2, 1, 3};
  for (bool by_valid : {true, false}) {
    LossNormalizer norm;
    norm.by_valid = by_valid;
    norm.fixed = double(outer);
    float loss = 0, normalizer = 0;
    ops.softmax_loss(outer, C, inner, p.data(), label.data(), true, 7, norm, &loss, &normalizer);
    double total = 0;
    for (int64_t k = 0; k < outer * inner; ++k) {
      if (label[size_t(k)] == 7) continue;
      total -= std::log(ref[size_t(((k / inner) * C + int64_t(label[size_t(k)])) * inner + k % inner)]);
    }
    const double n = by_valid ? 5.0 : 3.0;
    CHECK(normalizer == float(n));
    CHECK(loss == Approx(total / n).epsilon(1e-5));

    const float top_diff = 2.0f;
    std::vector<float> dx(x.size());
    ops.softmax_loss_backward(outer, C, inner, p.data(), label.data(), true, 7, &top_diff, &normalizer, dx.data());
    for (int64_t k = 0; k < outer * inner; ++k)
      for (int64_t c = 0; c < C; ++c) {
        const size_t at = size_t(((k / inner) * C + c) * inner + k % inner);
        const double want = label[size_t(k)] == 7 ? 0.0 : (ref[at] - (c == int64_t(label[size_t(k)]))) * 2.0 / n;
        CHECK(dx[at] == Approx(want).margin(1e-6));
      }
  }
  const std::vector<float> bad{0, 5, 1, 1, 1, 1};
  float loss = 0, normalizer = 0;
  ops.softmax_loss(outer, C, inner, p.data(), bad.data(), false, 0, LossNormalizer{}, &loss, &normalizer);
  CHECK(std::isnan(loss));
}

TEST_CASE("reductions accumulate in double", "[ops][reduce]") {
  const int64_t n = 4097;
  std::vector<float> x = test::uniform_vector(size_t(n), 14), y = test::uniform_vector(size_t(n), 15);
  double s = 0, sq = 0, as = 0, d = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += x[size_t(i)], sq += double(x[size_t(i)]) * x[size_t(i)], as += std::fabs(x[size_t(i)]);
    d += double(x[size_t(i)]) * y[size_t(i)], mag += std::fabs(double(x[size_t(i)]) * y[size_t(i)]);
  }
  const double tol = 2 * n * DBL_EPSILON;
  CHECK(std::fabs(ops.sum(n, x.data()) - s) <= tol * as);
  CHECK(std::fabs(ops.sumsq(n, x.data()) - sq) <= tol * sq);
  CHECK(std::fabs(ops.asum(n, x.data()) - as) <= tol * as);
  CHECK(std::fabs(ops.dot(n, x.data(), y.data()) - d) <= tol * mag);
  CHECK(ops.sum(0, x.data()) == 0.0);
}

TEST_CASE("uniform fills are the counter-based stream, lane i % 4 of block i / 4", "[ops][random]") {
  const int64_t n = 1003;
  std::vector<float> x(static_cast<size_t>(n)), again(static_cast<size_t>(n));
  ops.uniform(n, 42, counter_stream(3, 7), x.data());
  ops.uniform(n, 42, counter_stream(3, 7), again.data());
  CHECK(x == again);
  for (int64_t i = 0; i < n; ++i) {
    float u[4];
    counter_uniform4(42, counter_stream(3, 7), uint64_t(i / 4), u);
    CHECK(x[size_t(i)] == u[i % 4]);
    CHECK((x[size_t(i)] >= 0.0f && x[size_t(i)] < 1.0f));
  }
}

TEST_CASE("solver updates follow their formulas", "[ops][solver]") {
  const int64_t n = 64;
  const std::vector<float> w0 = test::uniform_vector(size_t(n), 16), g0 = test::uniform_vector(size_t(n), 17), v0 = test::uniform_vector(size_t(n), 18);
  const std::vector<float> s0 = test::uniform_vector(size_t(n), 19, 0.0f, 1.0f);
  const float m = 0.9f, rate = 0.05f, decay = 0.01f;
  auto near = [](float got, double want) { return std::fabs(got - want) <= 8 * FLT_EPSILON * (1 + std::fabs(want)); };

  std::vector<float> g = g0, v = v0;
  ops.sgd_step(n, m, rate, g.data(), v.data());
  for (int64_t k = 0; k < n; ++k) CHECK(near(v[size_t(k)], m * double(v0[size_t(k)]) + rate * double(g0[size_t(k)])));
  CHECK(g == v);

  g = g0, v = v0;
  ops.nesterov_step(n, m, rate, g.data(), v.data());
  for (int64_t k = 0; k < n; ++k) {
    const double nv = m * double(v0[size_t(k)]) + rate * double(g0[size_t(k)]);
    CHECK(near(g[size_t(k)], (1 + m) * nv - m * double(v0[size_t(k)])));
  }

  g = g0, v = v0;
  std::vector<float> s = s0;
  ops.adam_step(n, 0.9f, 0.999f, 1e-8f, rate, g.data(), v.data(), s.data());
  for (int64_t k = 0; k < n; ++k) {
    const double mm = 0.9 * v0[size_t(k)] + 0.1 * g0[size_t(k)];
    const double ss = 0.999 * s0[size_t(k)] + 0.001 * double(g0[size_t(k)]) * g0[size_t(k)];
    const double denom = std::sqrt(ss) + 1e-8;
    const double scale = rate * (0.9 * std::fabs(v0[size_t(k)]) + 0.1 * std::fabs(g0[size_t(k)])) / denom;
    CHECK(std::fabs(g[size_t(k)] - rate * mm / denom) <= 16 * FLT_EPSILON * scale);
  }

  g = g0;
  ops.l2_decay(n, decay, w0.data(), g.data());
  for (int64_t k = 0; k < n; ++k) CHECK(near(g[size_t(k)], g0[size_t(k)] + double(decay) * w0[size_t(k)]));
  g = g0;
  ops.l1_decay(n, decay, w0.data(), g.data());
  for (int64_t k = 0; k < n; ++k) CHECK(g[size_t(k)] == g0[size_t(k)] + decay * float((w0[size_t(k)] > 0) - (w0[size_t(k)] < 0)));

  // The fused L2 + SGD pass equals the separate passes (decay, step, w -= step, g = 0).
  std::vector<float> w = w0, fw = w0, fg = g0, fv = v0;
  g = g0, v = v0;
  ops.l2_decay(n, decay, w.data(), g.data());
  ops.sgd_step(n, m, rate, g.data(), v.data());
  ops.axpy(n, -1.0f, g.data(), w.data());
  ops.sgd_l2_update(n, m, rate, decay, fw.data(), fg.data(), fv.data());
  for (int64_t k = 0; k < n; ++k) {
    CHECK(near(fw[size_t(k)], w[size_t(k)]));
    CHECK(near(fv[size_t(k)], v[size_t(k)]));
    CHECK(fg[size_t(k)] == 0.0f);
  }
}
