// dsgeval's renderings: Markdown tables (stdout), JSON, sensitivity CSV / SVG and the suggested
// sparsity_param lines (see dsgeval_lib.hpp).
#include <algorithm>
#include <cmath>

#include "apps/dsgeval_lib.hpp"
#include "runtime/error.hpp"

namespace dsg {
namespace eval {
namespace {

std::string num(long long v) { return std::to_string(v); }

// JSON number (null when not finite).
std::string jnum(double v) { return std::isfinite(v) ? strfmt("%.10g", v) : "null"; }

std::string jstr(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += char(c);
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += strfmt("\\u%04x", c);
    else out += char(c);
  }
  return out + "\"";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string pct(double fraction) { return strfmt("%.2f", 100.0 * fraction); }

std::string layer_row(const LayerStats& l) {
  return "| " + l.name + " | " + l.type + " | " + l.shape + " | " + num(l.params) + " | " + num(l.weights) + " | " +
         num(l.nonzero_weights) + " | " + pct(l.sparsity()) + " | " + num(l.dense_bytes) + " | " +
         num(l.sparse_bytes) + " | " + (l.has_macs ? num(l.dense_macs) : "-") + " | " +
         (l.has_macs ? num(l.sparse_macs) : "-") + " | " + l.mode + " |\n";
}

std::string layer_json(const LayerStats& l, bool total) {
  std::string s = "{\"name\": " + jstr(l.name);
  if (!total) s += ", \"type\": " + jstr(l.type) + ", \"shape\": " + jstr(l.shape);
  s += ", \"params\": " + num(l.params) + ", \"nonzero_params\": " + num(l.nonzero_params) +
       ", \"weights\": " + num(l.weights) + ", \"nonzero_weights\": " + num(l.nonzero_weights) +
       ", \"sparsity\": " + jnum(l.sparsity()) + ", \"dense_bytes\": " + num(l.dense_bytes) +
       ", \"sparse_bytes\": " + num(l.sparse_bytes);
  s += l.has_macs ? ", \"dense_macs\": " + num(l.dense_macs) + ", \"sparse_macs\": " + num(l.sparse_macs)
                  : std::string(", \"dense_macs\": null, \"sparse_macs\": null");
  if (!total) s += ", \"mode\": " + jstr(l.mode);
  return s + "}";
}

}  // namespace

namespace {

std::string energy(double pj) { return pj >= 1e6 ? strfmt("%.2f uJ", pj / 1e6) : strfmt("%.1f nJ", pj / 1e3); }

std::string cost_row(const std::string& name, const compress::Cost& d, const compress::Cost& c) {
  return strfmt("| %s | %lld | %lld | %.0f (%s) | %.0f (%s) | %.0f | %.0f | %s | %s | %.1fx |\n", name.c_str(),
                (long long)d.macs, (long long)c.macs, d.weight_words, d.weights_in_dram ? "DRAM" : "SRAM",
                c.weight_words + c.index_words, c.weights_in_dram ? "DRAM" : "SRAM", c.index_words, c.activation_words,
                energy(d.energy_pj).c_str(), energy(c.energy_pj).c_str(), c.energy_pj > 0 ? d.energy_pj / c.energy_pj : 0.0);
}

std::string cost_markdown(const std::vector<compress::LayerCost>& cost, int64_t sram_bytes) {
  std::string s = "\n## Cost per sample (EIE 45 nm energy table)\n\n";
  s += "| layer | dense MACs | compressed MACs | dense weight words | compressed weight+index words | index words | "
       "activation words | dense energy | compressed energy | saving |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& l : cost) s += cost_row(l.name, l.dense, l.compressed);
  s += cost_row("**total**", compress::total(cost, false), compress::total(cost, true));
  s += strfmt("\nModel: words are 32-bit equivalents read per sample. Dense: every weight once, MACs = weights x "
              "positions. Compressed: the stored codes at their width plus one relative index per stored entry (block), "
              "MACs on non-zero weights only. Weights sit in SRAM when a layer's fit in %lld KiB, else DRAM; activations "
              "(inputs once, outputs once) in SRAM. Energy: DRAM %.0f pJ, SRAM %.0f pJ per 32-bit read, float multiply "
              "%.1f pJ + add %.1f pJ per MAC.\n",
              (long long)(sram_bytes / 1024), compress::kDramReadPj, compress::kSramReadPj, compress::kFloatMultPj,
              compress::kFloatAddPj);
  return s;
}

std::string cost_json(const compress::Cost& c) {
  return "{\"macs\": " + num(c.macs) + ", \"weight_words\": " + jnum(c.weight_words) + ", \"index_words\": " +
         jnum(c.index_words) + ", \"activation_words\": " + jnum(c.activation_words) + ", \"weights_in_dram\": " +
         (c.weights_in_dram ? "true" : "false") + ", \"energy_pj\": " + jnum(c.energy_pj) + "}";
}

std::string accuracy_json(const EvalResult& r) {
  return "{\"top1\": " + jnum(r.top1) + ", \"top5\": " + jnum(r.topk) + ", \"loss\": " +
         (r.has_loss ? jnum(r.loss) : "null") + ", \"seconds\": " + jnum(r.seconds) + ", \"images_per_sec\": " +
         jnum(r.images_per_sec) + "}";
}

}  // namespace

std::string markdown_report(const std::string& model_path, const EvalResult& r, const std::vector<LayerStats>& layers,
                            const CompressedSection& extra) {
  std::string s = "# dsgeval: " + model_path + "\n\n";
  s += strfmt("Test set: %lld samples (%lld batches of %lld; the set holds %lld), %d classes: %s\n\n",
              (long long)r.samples, (long long)r.batches, (long long)r.batch_size, (long long)r.dataset_size,
              r.classes, r.source.c_str());
  s += "## Accuracy\n\n| metric | value |\n|---|---|\n";
  s += strfmt("| top-1 accuracy | %.6f |\n", r.top1);
  if (r.nonfinite_samples > 0)
    s += strfmt("| samples with NaN or infinite scores (counted wrong) | %lld |\n", (long long)r.nonfinite_samples);
  s += strfmt("| top-5 accuracy%s | %.6f |\n", r.top_k < 5 ? strfmt(" (k = %d classes)", r.top_k).c_str() : "", r.topk);
  s += r.has_loss ? strfmt("| mean loss | %.6f |\n", r.loss) : std::string("| mean loss | - (no loss output) |\n");
  s += strfmt("| images/s | %.1f |\n", r.images_per_sec);
  if (r.dense_macs_per_sample > 0 && r.macs_per_sample != r.dense_macs_per_sample)
    s += strfmt("| MACs per sample as run (dynamic selection, search included) | %.4g of %.4g dense (%.2fx fewer) |\n",
                r.macs_per_sample, r.dense_macs_per_sample, r.dense_macs_per_sample / std::max(1.0, r.macs_per_sample));
  s += "\n";
  if (extra.compressed) {
    const EvalResult& c = *extra.compressed;
    s += "## Compressed model: decoded vs compressed-form kernel\n\n| run | top-1 | top-5 | mean loss | forward seconds | images/s |\n|---|---|---|---|---|---|\n";
    s += strfmt("| decoded (dense weights, BLAS) | %.6f | %.6f | %s | %.3f | %.1f |\n", r.top1, r.topk,
                r.has_loss ? strfmt("%.6f", r.loss).c_str() : "-", r.seconds, r.images_per_sec);
    s += strfmt("| EIE-style kernel on the compressed form | %.6f | %.6f | %s | %.3f | %.1f |\n\n", c.top1, c.topk,
                c.has_loss ? strfmt("%.6f", c.loss).c_str() : "-", c.seconds, c.images_per_sec);
    s += c.top1 == r.top1 ? "Both runs give the same top-1 accuracy.\n\n"
                          : strfmt("Top-1 differs by %.4f points (float summation order).\n\n", 100.0 * (c.top1 - r.top1));
  }

  s += "## Per-class accuracy\n\n| class | samples | correct | accuracy |\n|---|---|---|---|\n";
  for (int c = 0; c < r.classes; ++c)
    s += strfmt("| %d | %lld | %lld | %s |\n", c, (long long)r.class_samples[size_t(c)],
                (long long)r.class_correct[size_t(c)],
                r.class_samples[size_t(c)] ? strfmt("%.6f", double(r.class_correct[size_t(c)]) / double(r.class_samples[size_t(c)])).c_str() : "-");
  s += "\n## Confusion matrix (rows: true class, columns: predicted class)\n\n";
  if (r.classes <= 20) {
    s += "| true \\ predicted |";
    for (int c = 0; c < r.classes; ++c) s += " " + num(c) + " |";
    s += "\n|---|";
    for (int c = 0; c < r.classes; ++c) s += "---|";
    s += "\n";
    for (int t = 0; t < r.classes; ++t) {
      s += "| " + num(t) + " |";
      for (int c = 0; c < r.classes; ++c) s += " " + num(r.confusion[size_t(t)][size_t(c)]) + " |";
      s += "\n";
    }
  } else {
    s += strfmt("(%d classes: too wide for a table; see --json)\n", r.classes);
  }

  s += "\n## Layers\n\n| layer | type | weight shape | params | weights | non-zero weights | sparsity % | "
       "dense bytes | sparse bytes | dense MACs | sparse MACs | mode |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& l : layers) s += layer_row(l);
  s += layer_row(totals(layers));
  s += std::string("\n") + kSparseBytesFormula +
       ". MACs are per sample: Convolution = weights x output positions, InnerProduct = weights; sparse MACs "
       "count only non-zero weights. Sparsity is over the weights (blob 0; W_xc + W_hc for an LSTM).\n";
  if (extra.compressed) {
    s += "\n## Execution in the compressed run\n\n| layer | kernel |\n|---|---|\n";
    for (const auto& l : layers) s += "| " + l.name + " | " + l.compressed_mode + " |\n";
  }
  if (extra.cost) s += cost_markdown(*extra.cost, extra.sram_bytes);
  return s;
}

std::string json_report(const std::string& model_path, const EvalResult& r, const std::vector<LayerStats>& layers,
                        const SensitivityResult* sens, const CompressedSection& extra) {
  std::string s = "{\n  \"model\": " + jstr(model_path) + ",\n";
  s += "  \"test_set\": {\"source\": " + jstr(r.source) + ", \"samples\": " + num(r.samples) +
       ", \"batches\": " + num(r.batches) + ", \"batch_size\": " + num(r.batch_size) +
       ", \"dataset_size\": " + num(r.dataset_size) + "},\n";
  s += "  \"classes\": " + num(r.classes) + ",\n  \"nonfinite_samples\": " + num(r.nonfinite_samples) +
       ",\n  \"top1\": " + jnum(r.top1) + ",\n  \"top5\": " + jnum(r.topk) +
       ",\n  \"top5_k\": " + num(r.top_k) + ",\n  \"loss\": " + (r.has_loss ? jnum(r.loss) : "null") +
       ",\n  \"images_per_sec\": " + jnum(r.images_per_sec) + ",\n  \"per_class\": [";
  for (int c = 0; c < r.classes; ++c) {
    int64_t n = r.class_samples[size_t(c)], k = r.class_correct[size_t(c)];
    s += std::string(c ? ", " : "") + "{\"class\": " + num(c) + ", \"samples\": " + num(n) + ", \"correct\": " +
         num(k) + ", \"accuracy\": " + (n ? jnum(double(k) / double(n)) : "null") + "}";
  }
  s += "],\n  \"confusion\": [";
  for (int t = 0; t < r.classes; ++t) {
    s += t ? ", [" : "[";
    for (int c = 0; c < r.classes; ++c) s += (c ? ", " : "") + num(r.confusion[size_t(t)][size_t(c)]);
    s += "]";
  }
  s += "],\n  \"sparse_bytes_formula\": " + jstr(kSparseBytesFormula) + ",\n  \"layers\": [\n";
  for (size_t i = 0; i < layers.size(); ++i) s += "    " + layer_json(layers[i], false) + (i + 1 < layers.size() ? ",\n" : "\n");
  s += "  ],\n  \"totals\": " + layer_json(totals(layers), true);
  if (sens) {
    s += ",\n  \"sensitivity\": {\"granularity\": " + jstr(granularity_name(sens->granularity)) +
         ", \"base_accuracy\": " + jnum(sens->base_accuracy) + ", \"max_loss_points\": " + jnum(sens->max_loss_points) +
         ", \"levels\": [";
    for (size_t j = 0; j < sens->levels.size(); ++j) s += (j ? ", " : "") + jnum(sens->levels[j]);
    s += "], \"layers\": [";
    for (size_t i = 0; i < sens->layers.size(); ++i) {
      s += std::string(i ? ", " : "") + "{\"name\": " + jstr(sens->layers[i]) + ", \"accuracy\": [";
      for (size_t j = 0; j < sens->accuracy[i].size(); ++j) s += (j ? ", " : "") + jnum(sens->accuracy[i][j]);
      int b = sens->suggested[i];
      s += "], \"suggested_sparsity\": " + (b < 0 ? std::string("null") : jnum(sens->levels[size_t(b)])) + "}";
    }
    s += "]}";
  }
  if (extra.compressed) {
    s += ",\n  \"decoded_run\": " + accuracy_json(r) + ",\n  \"compressed_run\": " + accuracy_json(*extra.compressed) +
         ",\n  \"compressed_kernels\": {";
    for (size_t i = 0; i < layers.size(); ++i) s += (i ? ", " : "") + jstr(layers[i].name) + ": " + jstr(layers[i].compressed_mode);
    s += "}";
  }
  if (extra.cost) {
    s += ",\n  \"cost\": {\"sram_bytes\": " + num(extra.sram_bytes) + ", \"layers\": [";
    for (size_t i = 0; i < extra.cost->size(); ++i) {
      const auto& l = (*extra.cost)[i];
      s += std::string(i ? ", " : "") + "{\"name\": " + jstr(l.name) + ", \"dense\": " + cost_json(l.dense) +
           ", \"compressed\": " + cost_json(l.compressed) + "}";
    }
    s += "], \"total\": {\"dense\": " + cost_json(compress::total(*extra.cost, false)) + ", \"compressed\": " +
         cost_json(compress::total(*extra.cost, true)) + "}}";
  }
  return s + "\n}\n";
}

std::string sensitivity_csv(const SensitivityResult& s) {
  std::string out = "layer,granularity,sparsity,accuracy,accuracy_drop\n";
  for (size_t i = 0; i < s.layers.size(); ++i)
    for (size_t j = 0; j < s.levels.size(); ++j)
      out += csv_field(s.layers[i]) + "," + granularity_name(s.granularity) + strfmt(",%g,%.6f,%.6f\n", s.levels[j],
             s.accuracy[i][j], s.base_accuracy - s.accuracy[i][j]);
  return out;
}

std::vector<std::string> suggestion_lines(const SensitivityResult& s) {
  std::vector<std::string> lines;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    int b = s.suggested[i];
    if (b < 0) {
      lines.push_back(strfmt("# layer \"%s\": no tested sparsity keeps the top-1 drop within %g points; leave it dense",
                             s.layers[i].c_str(), s.max_loss_points));
      continue;
    }
    lines.push_back(strfmt("layer \"%s\": sparsity_param { policy: \"magnitude\"%s target_sparsity: %g%s }",
                           s.layers[i].c_str(), s.granularity == Granularity::Filter ? " granularity: FILTER" : "",
                           s.levels[size_t(b)], s.needs_force[i] ? " force: true" : ""));
  }
  return lines;
}

}  // namespace eval
}  // namespace dsg
