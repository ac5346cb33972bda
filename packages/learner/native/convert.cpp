#include "convert.h"

#include <vector>

#include "gguf_io.h"

namespace wr1 {

namespace {
ggml_type typeNamed(const std::string &name) {
  for (int t = 0; t < GGML_TYPE_COUNT; t++) {
    const char *n = ggml_type_name((ggml_type)t);
    if (n != nullptr && name == n && ggml_type_size((ggml_type)t) > 0 && ggml_blck_size((ggml_type)t) > 0) return (ggml_type)t;
  }
  throw Error("unknown ggml type " + name + " (e.g. f16, bf16, q8_0, q4_K)");
}

// llama.cpp's general.file_type (llama_ftype) of a file whose matrices are `type`; -1: none.
int fileTypeOf(ggml_type type) {
  switch (type) {
  case GGML_TYPE_F32: return 0;
  case GGML_TYPE_F16: return 1;
  case GGML_TYPE_Q4_0: return 2;
  case GGML_TYPE_Q4_1: return 3;
  case GGML_TYPE_Q8_0: return 7;
  case GGML_TYPE_Q5_0: return 8;
  case GGML_TYPE_Q5_1: return 9;
  case GGML_TYPE_Q2_K: return 10;
  case GGML_TYPE_Q3_K: return 12;  // Q3_K_M
  case GGML_TYPE_Q4_K: return 15;  // Q4_K_M
  case GGML_TYPE_Q5_K: return 17;  // Q5_K_M
  case GGML_TYPE_Q6_K: return 18;
  case GGML_TYPE_BF16: return 32;
  default: return -1;
  }
}
}  // namespace

int convertModel(const std::string &from, const std::string &to, const std::string &typeName) {
  const ggml_type type = typeNamed(typeName);
  if (ggml_quantize_requires_imatrix(type)) throw Error("type " + typeName + " needs an importance matrix");
  ggml_context *raw = nullptr;
  gguf_init_params ip = {false, &raw};
  GgufPtr in(gguf_init_from_file(from.c_str(), ip));
  ContextPtr data(raw);
  if (!in) throw Error("could not read GGUF " + from);
  GgufWriter out;
  gguf_set_kv(out.meta(), in.get());
  ContextPtr shapes = metadataContext(gguf_get_n_tensors(in.get()));
  int converted = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(in.get()); i++) {
    ggml_tensor *t = ggml_get_tensor(data.get(), gguf_get_tensor_name(in.get(), i));
    if (type == GGML_TYPE_F32 && t->type != GGML_TYPE_F32) {
      // Back to F32, every tensor: dequantize (the reference that quantized-base tests compare against).
      const ggml_type_traits *traits = ggml_get_type_traits(t->type);
      if (traits->to_float == nullptr) throw Error(std::string("cannot convert ") + ggml_type_name(t->type) + " to f32");
      ggml_tensor *like = ggml_new_tensor(shapes.get(), GGML_TYPE_F32, GGML_MAX_DIMS, t->ne);
      ggml_set_name(like, t->name);
      std::vector<uint8_t> bytes(ggml_nbytes(like));
      traits->to_float(t->data, (float *)bytes.data(), ggml_nelements(t));
      out.addBytes(like, std::move(bytes));
      converted++;
      continue;
    }
    const bool convert = type != GGML_TYPE_F32 && ggml_n_dims(t) == 2 && t->type == GGML_TYPE_F32 &&
                         t->ne[0] % ggml_blck_size(type) == 0;
    if (!convert) {
      const uint8_t *b = (const uint8_t *)t->data;
      out.addBytes(t, std::vector<uint8_t>(b, b + ggml_nbytes(t)));
      continue;
    }
    ggml_tensor *like = ggml_new_tensor_2d(shapes.get(), type, t->ne[0], t->ne[1]);
    ggml_set_name(like, t->name);
    std::vector<uint8_t> bytes(ggml_nbytes(like));
    ggml_quantize_chunk(type, (const float *)t->data, bytes.data(), 0, t->ne[1], t->ne[0], nullptr);
    out.addBytes(like, std::move(bytes));
    converted++;
  }
  // The metadata says what the file now holds (f32: every tensor, LLAMA_FTYPE_ALL_F32); a type
  // llama.cpp has no file type for drops the key rather than keep the source's.
  if (converted > 0 || type == GGML_TYPE_F32) {
    const int fileType = fileTypeOf(type);
    if (fileType >= 0) gguf_set_val_u32(out.meta(), "general.file_type", (uint32_t)fileType);
    else gguf_remove_key(out.meta(), "general.file_type");
  }
  out.write(to);
  return converted;
}

}  // namespace wr1
