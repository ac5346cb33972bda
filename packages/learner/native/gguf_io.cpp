#include "gguf_io.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace wr1 {

uint32_t metaU32(gguf_context *g, const std::string &key, int64_t fallback, bool required) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (required) throw Error("GGUF metadata lacks " + key);
    return (uint32_t)fallback;
  }
  switch (gguf_get_kv_type(g, id)) {
  case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
  case GGUF_TYPE_INT32: return (uint32_t)gguf_get_val_i32(g, id);
  case GGUF_TYPE_UINT64: return (uint32_t)gguf_get_val_u64(g, id);
  case GGUF_TYPE_ARRAY: return (uint32_t)gguf_get_arr_n(g, id);
  default: throw Error("GGUF metadata " + key + " has an unexpected type");
  }
}

float metaF32(gguf_context *g, const std::string &key, float fallback) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return fallback;
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g, id);
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT64) return (float)gguf_get_val_f64(g, id);
  throw Error("GGUF metadata " + key + " has an unexpected type");
}

GgufPtr openGguf(const std::string &path, ContextPtr &ctx) {
  ggml_context *raw = nullptr;
  gguf_init_params ip = {/*no_alloc*/ true, &raw};
  GgufPtr meta(gguf_init_from_file(path.c_str(), ip));
  ctx.reset(raw);
  if (!meta) throw Error("could not read GGUF " + path);
  return meta;
}

namespace {
struct FileClose {
  void operator()(FILE *f) const { fclose(f); }
};
}  // namespace

void readTensorData(const std::string &path, gguf_context *meta, ggml_context *ctx) {
  std::unique_ptr<FILE, FileClose> f(fopen(path.c_str(), "rb"));
  if (!f) throw Error("could not open " + path);
  const size_t dataOffset = gguf_get_data_offset(meta);
  std::vector<uint8_t> buf;
  std::vector<float> values;
  for (int64_t i = 0; i < gguf_get_n_tensors(meta); i++) {
    const char *name = gguf_get_tensor_name(meta, i);
    ggml_tensor *t = ggml_get_tensor(ctx, name);
    const ggml_type stored = gguf_get_tensor_type(meta, i);
    const ggml_type_traits *traits = ggml_get_type_traits(stored);
    const bool dequantize = t->type != stored;
    if (dequantize && (t->type != GGML_TYPE_F32 || traits->to_float == nullptr))
      throw Error(std::string("tensor ") + name + " is " + ggml_type_name(stored) + " in " + path + ", which cannot be read as " +
                  ggml_type_name(t->type));
    buf.resize(gguf_get_tensor_size(meta, i));
    if (buf.size() != ggml_row_size(stored, ggml_nelements(t)))
      throw Error(std::string("tensor ") + name + " of " + path + " has " + std::to_string(buf.size()) +
                  " bytes, not what its shape and type need");
    const size_t offset = dataOffset + gguf_get_tensor_offset(meta, i);
    if (fseek(f.get(), (long)offset, SEEK_SET) != 0 || fread(buf.data(), 1, buf.size(), f.get()) != buf.size())
      throw Error(std::string("could not read tensor data of ") + name + " from " + path);
    if (!dequantize) {
      ggml_backend_tensor_set(t, buf.data(), 0, buf.size());
      continue;
    }
    values.resize(ggml_nelements(t));
    traits->to_float(buf.data(), values.data(), (int64_t)values.size());
    ggml_backend_tensor_set(t, values.data(), 0, values.size() * sizeof(float));
  }
}

GgufWriter::GgufWriter() : out_(gguf_init_empty()) {}

ggml_tensor *GgufWriter::copyOf(ggml_tensor *t, const char *suffix) {
  // One small metadata context per tensor keeps the writer free of a capacity guess.
  ContextPtr one = metadataContext(1);
  ggml_tensor *copy = ggml_dup_tensor(one.get(), t);
  if (suffix) ggml_format_name(copy, "%s%s", t->name, suffix);
  else ggml_set_name(copy, t->name);
  ctxs_.push_back(std::move(one));
  return copy;
}

void GgufWriter::add(ggml_tensor *t, const char *suffix) {
  std::vector<uint8_t> bytes(ggml_nbytes(t));
  ggml_backend_tensor_get(t, bytes.data(), 0, bytes.size());
  ggml_tensor *copy = copyOf(t, suffix);
  keep_.push_back(std::move(bytes));
  gguf_add_tensor(out_.get(), copy);
  gguf_set_tensor_data(out_.get(), copy->name, keep_.back().data());
}

void GgufWriter::addBytes(ggml_tensor *like, std::vector<uint8_t> bytes) {
  if (bytes.size() != ggml_nbytes(like)) throw Error(std::string("wrong byte count for ") + like->name);
  ggml_tensor *copy = copyOf(like, nullptr);
  keep_.push_back(std::move(bytes));
  gguf_add_tensor(out_.get(), copy);
  gguf_set_tensor_data(out_.get(), copy->name, keep_.back().data());
}

void GgufWriter::write(const std::string &path) {
  const std::string tmp = path + ".tmp";
  if (!gguf_write_to_file(out_.get(), tmp.c_str(), false)) throw Error("could not write " + tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("could not rename " + tmp + " to " + path);
  }
}

std::vector<uint8_t> GgufWriter::bytes() {
  // gguf.h writes to a FILE*: an in-memory stream (POSIX open_memstream) avoids the disk.
  char *data = nullptr;
  size_t size = 0;
  FILE *f = open_memstream(&data, &size);
  if (!f) throw Error("could not open an in-memory stream for the GGUF");
  const bool ok = gguf_write_to_file_ptr(out_.get(), f, false);
  std::fclose(f);  // sets data and size
  std::vector<uint8_t> out(data, data + (ok ? size : 0));
  std::free(data);
  if (!ok) throw Error("could not write the GGUF to memory");
  return out;
}

}  // namespace wr1
