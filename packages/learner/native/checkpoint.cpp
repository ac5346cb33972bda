#include "checkpoint.h"

#include <utility>

#include "gguf_io.h"

namespace wr1 {

namespace {

// W + (alpha/r)·B·A for an F32 base weight.
std::vector<uint8_t> merged(Model &m, ggml_tensor *w, const LoraPair &pair) {
  if (w->type != GGML_TYPE_F32)
    throw Error("merging LoRA into a " + std::string(ggml_type_name(w->type)) + " weight (" + w->name +
                ") is not supported; save with format \"lora\"");
  std::vector<float> wv(ggml_nelements(w)), a(ggml_nelements(pair.a)), b(ggml_nelements(pair.b));
  ggml_backend_tensor_get(w, wv.data(), 0, wv.size() * sizeof(float));
  ggml_backend_tensor_get(pair.a, a.data(), 0, a.size() * sizeof(float));
  ggml_backend_tensor_get(pair.b, b.data(), 0, b.size() * sizeof(float));
  const int64_t in = w->ne[0], out = w->ne[1], r = m.options.loraRank;
  const float s = m.options.loraAlpha / (float)r;
  for (int64_t o = 0; o < out; o++)
    for (int64_t k = 0; k < r; k++) {
      const float bk = s * b[o * r + k];
      const float *ak = a.data() + k * in;
      float *row = wv.data() + o * in;
      for (int64_t i = 0; i < in; i++) row[i] += bk * ak[i];
    }
  const uint8_t *bytes = reinterpret_cast<const uint8_t *>(wv.data());
  return std::vector<uint8_t>(bytes, bytes + wv.size() * sizeof(float));
}

}  // namespace

void saveModel(Model &m, const std::string &path) {
  m.requireTrainable("save");
  GgufWriter out;
  gguf_set_kv(out.meta(), m.meta.get());
  bool allF32 = true;
  for (auto &name : m.order) {
    ggml_tensor *t = m.tensors.at(name);
    allF32 = allF32 && t->type == GGML_TYPE_F32;
    auto it = m.loras.find(t);
    if (it == m.loras.end()) out.add(t);
    else out.addBytes(t, merged(m, t, it->second));
  }
  // The base file's type (e.g. MOSTLY_Q4_1) no longer describes weights trained in F32: llama.cpp
  // loads by tensor types, but the metadata must say what the file holds. 0 = LLAMA_FTYPE_ALL_F32.
  if (allF32) gguf_set_val_u32(out.meta(), "general.file_type", 0);
  out.write(path);
}

namespace {
void addAdapter(Model &m, GgufWriter &out) {
  if (!m.lora()) throw Error("format \"lora\" needs a learner in LoRA mode");
  gguf_set_val_str(out.meta(), "general.architecture", m.hp.arch.c_str());
  gguf_set_val_str(out.meta(), "general.type", "adapter");
  gguf_set_val_str(out.meta(), "adapter.type", "lora");
  gguf_set_val_f32(out.meta(), "adapter.lora.alpha", m.options.loraAlpha);
  for (auto *p : m.params) out.add(p);
}
}  // namespace

void saveAdapter(Model &m, const std::string &path) {
  GgufWriter out;
  addAdapter(m, out);
  out.write(path);
}

std::vector<uint8_t> adapterBytes(Model &m) {
  GgufWriter out;
  addAdapter(m, out);
  return out.bytes();
}

void saveState(Model &m, const std::string &path) {
  m.requireTrainable("saveState");
  GgufWriter out;
  gguf_set_val_str(out.meta(), "general.type", "workflow-r1.learner-state");
  gguf_set_val_str(out.meta(), "learner.mode", m.lora() ? "lora" : "full");
  gguf_set_val_u64(out.meta(), "learner.step", (uint64_t)m.step);
  gguf_set_val_u32(out.meta(), "learner.lora.rank", (uint32_t)m.options.loraRank);
  for (auto *p : m.params) out.add(p);
  for (auto *p : m.params) out.add(m.adamM.at(p));
  for (auto *p : m.params) out.add(m.adamV.at(p));
  out.write(path);
}

void loadState(Model &m, const std::string &path) {
  m.requireTrainable("loadState");
  ggml_context *raw = nullptr;
  gguf_init_params ip = {false, &raw};
  GgufPtr in(gguf_init_from_file(path.c_str(), ip));
  ContextPtr data(raw);
  if (!in) throw Error("could not read learner state " + path);
  const int64_t modeId = gguf_find_key(in.get(), "learner.mode");
  const int64_t stepId = gguf_find_key(in.get(), "learner.step");
  if (modeId < 0 || stepId < 0) throw Error(path + " is not a learner state (no learner.mode / learner.step)");
  const std::string mode = gguf_get_val_str(in.get(), modeId);
  if (mode != (m.lora() ? "lora" : "full")) throw Error("state " + path + " is for mode " + mode);
  std::vector<std::pair<ggml_tensor *, ggml_tensor *>> pairs;
  for (auto *p : m.params)
    for (auto *t : {p, m.adamM.at(p), m.adamV.at(p)}) {
      ggml_tensor *s = ggml_get_tensor(data.get(), t->name);
      if (!s) throw Error("state " + path + " lacks tensor " + t->name);
      if (!ggml_are_same_shape(s, t) || s->type != t->type)
        throw Error(std::string("state tensor ") + t->name + " has another shape or type");
      pairs.emplace_back(t, s);
    }
  for (auto &pr : pairs) ggml_backend_tensor_set(pr.first, pr.second->data, 0, ggml_nbytes(pr.first));
  m.step = (int64_t)gguf_get_val_u64(in.get(), stepId);
  m.weightsVersion++;
  m.zeroGrad();
}

}  // namespace wr1
