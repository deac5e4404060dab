// Config helpers for sparsity end-to-end tests, built on learnable_dataset.hpp: add a
// sparsity_param to a layer of a solver prototxt, write a schedule, and a tiny conv net whose first
// convolution exercises the "first convolution stays dense" rule.
#pragma once
#include <stdexcept>
#include <string>

#include "support/learnable_dataset.hpp"

namespace dsg::test {

// Returns `solver_text` with `field` (e.g. "quant_param { bits: 4 }") added to every layer named
// `layer` (inserted right after `layer { name: "<layer>"`). Throws std::logic_error if there is none.
inline std::string with_layer_field(std::string solver_text, const std::string& layer, const std::string& field) {
  const std::string anchor = "layer { name: \"" + layer + "\"";
  size_t pos = solver_text.find(anchor);
  if (pos == std::string::npos) throw std::logic_error("with_layer_field: no layer named " + layer);
  while (pos != std::string::npos) {
    std::string insert = " " + field;
    solver_text.insert(pos + anchor.size(), insert);
    pos = solver_text.find(anchor, pos + anchor.size() + insert.size());
  }
  return solver_text;
}

// `sparsity_param { <body> }` on every layer named `layer`.
inline std::string with_sparsity(const std::string& solver_text, const std::string& layer, const std::string& body) {
  return with_layer_field(solver_text, layer, "sparsity_param { " + body + " }");
}

// `quant_param { <body> }` on every layer named `layer`.
inline std::string with_quant(const std::string& solver_text, const std::string& layer, const std::string& body) {
  return with_layer_field(solver_text, layer, "quant_param { " + body + " }");
}

// `schedule { <phases> }` followed by a newline, for the extra_solver argument.
inline std::string schedule(const std::string& phases) { return "schedule { " + phases + " }\n"; }

// Like tiny_mlp_solver but with a 4-filter 3x3 convolution "conv1" (and ReLU) before ip1.
inline std::string tiny_conv_solver(const std::string& dir, int max_iter, const std::string& extra_solver = "") {
  std::string text = tiny_mlp_solver(dir, max_iter, extra_solver);
  const std::string ip1 = " layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"data\"";
  size_t pos = text.find(ip1);
  if (pos == std::string::npos) throw std::logic_error("tiny_conv_solver: tiny_mlp_solver changed");
  text.replace(pos, ip1.size(),
               " layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
               "   convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: \"xavier\" } } }\n"
               " layer { name: \"relu0\" type: \"ReLU\" bottom: \"conv1\" top: \"conv1\" }\n"
               " layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"conv1\"");
  return text;
}

}  // namespace dsg::test
