#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter eltwise_param(EltwiseParameter::EltwiseOp op) {
  LayerParameter p;
  p.set_name("elt");
  p.set_type("Eltwise");
  p.mutable_eltwise_param()->set_operation(op);
  return p;
}

static void fill3(Tensor& a, Tensor& b, Tensor& c) {
  const float va[] = {1, -2, 3, 0}, vb[] = {2, 5, -1, 0}, vc[] = {-3, 4, 3, 1};
  for (Tensor* t : {&a, &b, &c}) t->reshape({2, 2});
  for (int i = 0; i < 4; ++i) {
    a.mutable_data()[i] = va[i];
    b.mutable_data()[i] = vb[i];
    c.mutable_data()[i] = vc[i];
  }
}

TEST_CASE("Eltwise PROD, SUM with coeff and MAX forward", "[layer][eltwise]") {
  Tensor a, b, c, y;
  fill3(a, b, c);
  std::mt19937_64 rng(1);
  {
    auto layer = create_layer(eltwise_param(EltwiseParameter::PROD));
    layer->setup({&a, &b, &c}, {&y}, rng);
    layer->forward({&a, &b, &c}, {&y}, Context{});
    const float e[] = {-6, -40, -9, 0};
    for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == e[i]);
  }
  {
    auto p = eltwise_param(EltwiseParameter::SUM);
    for (float k : {1.0f, -1.0f, 0.5f}) p.mutable_eltwise_param()->add_coeff(k);
    auto layer = create_layer(p);
    layer->setup({&a, &b, &c}, {&y}, rng);
    layer->forward({&a, &b, &c}, {&y}, Context{});
    const float e[] = {-2.5f, -5, 5.5f, 0.5f};
    for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == Approx(e[i]));
    for (int i = 0; i < 4; ++i) y.mutable_diff()[i] = 2.0f;
    layer->backward({&y}, {true, true, true}, {&a, &b, &c}, Context{});
    CHECK(b.diff()[0] == -2.0f);
    CHECK(c.diff()[3] == 1.0f);
  }
  {
    auto layer = create_layer(eltwise_param(EltwiseParameter::MAX));
    layer->setup({&a, &b, &c}, {&y}, rng);
    layer->forward({&a, &b, &c}, {&y}, Context{});
    const float e[] = {2, 5, 3, 1};
    for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == e[i]);
    for (int i = 0; i < 4; ++i) y.mutable_diff()[i] = 1.0f;
    layer->backward({&y}, {true, true, true}, {&a, &b, &c}, Context{});
    // Winners: b, b, a (tie with c: the earlier bottom keeps it), c.
    const float da[] = {0, 0, 1, 0}, db[] = {1, 1, 0, 0}, dc[] = {0, 0, 0, 1};
    for (int i = 0; i < 4; ++i) {
      CHECK(a.diff()[i] == da[i]);
      CHECK(b.diff()[i] == db[i]);
      CHECK(c.diff()[i] == dc[i]);
    }
  }
}

TEST_CASE("Eltwise gradient check", "[layer][eltwise][gradient]") {
  for (auto op : {EltwiseParameter::PROD, EltwiseParameter::SUM, EltwiseParameter::MAX}) {
    auto p = eltwise_param(op);
    if (op == EltwiseParameter::SUM)
      for (float k : {0.5f, -2.0f, 1.0f}) p.mutable_eltwise_param()->add_coeff(k);
    auto layer = create_layer(p);
    Tensor a({2, 3, 4}), b({2, 3, 4}), c({2, 3, 4}), y;
    // Distinct ranges keep MAX away from ties, where it has no derivative.
    test::fill_uniform(a, -1, 1, 1);
    test::fill_uniform(b, -1, 1, 2);
    test::fill_uniform(c, -1, 1, 3);
    for (int64_t i = 0; i < a.count(); ++i) {
      a.mutable_data()[i] += float(i % 3) * 3;
      b.mutable_data()[i] += float((i + 1) % 3) * 3;
      c.mutable_data()[i] += float((i + 2) % 3) * 3;
    }
    std::mt19937_64 rng(1);
    layer->setup({&a, &b, &c}, {&y}, rng);
    test::check_layer_gradient(*layer, {&a, &b, &c}, {&y}, Context{});
  }
}

TEST_CASE("Eltwise rejects mismatched shapes and bad coeff", "[layer][eltwise]") {
  std::mt19937_64 rng(1);
  Tensor a({2, 3}), b({3, 2}), y;
  REQUIRE_THROWS_AS(create_layer(eltwise_param(EltwiseParameter::SUM))->setup({&a, &b}, {&y}, rng), dsg::Error);
  auto p = eltwise_param(EltwiseParameter::SUM);
  p.mutable_eltwise_param()->add_coeff(1.0f);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&a, &a}, {&y}, rng), dsg::Error);
  auto q = eltwise_param(EltwiseParameter::PROD);
  q.mutable_eltwise_param()->add_coeff(1.0f);
  q.mutable_eltwise_param()->add_coeff(1.0f);
  REQUIRE_THROWS_AS(create_layer(q)->setup({&a, &a}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(eltwise_param(EltwiseParameter::SUM))->setup({&a}, {&y}, rng), dsg::Error);
}
