// GGUF reading and writing on top of ggml's gguf.h: typed metadata lookups, tensor data into
// backend buffers, and files that appear whole or not at all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "handles.h"

namespace wr1 {

// Integer metadata (u32 / i32 / u64, or an array's length). Missing: `fallback`, or an error if required.
uint32_t metaU32(gguf_context *g, const std::string &key, int64_t fallback, bool required);
float metaF32(gguf_context *g, const std::string &key, float fallback);

// Opens a GGUF's metadata and tensor descriptions (no data) into `ctx`.
GgufPtr openGguf(const std::string &path, ContextPtr &ctx);

// Copies each tensor's data from the file into its (already allocated) backend tensor. A tensor
// that `ctx` holds as F32 while the file stores another type is dequantized on the way (ggml's
// to_float of that type); any other type difference is an error naming the tensor.
void readTensorData(const std::string &path, gguf_context *meta, ggml_context *ctx);

// Builds a GGUF from backend tensors: keeps host copies of their data alive until written.
class GgufWriter {
public:
  GgufWriter();
  gguf_context *meta() { return out_.get(); }
  // Adds `t` under its own name (or name + suffix) with its current data.
  void add(ggml_tensor *t, const char *suffix = nullptr);
  // Adds a tensor shaped like `like` with the given bytes (e.g. a merged weight).
  void addBytes(ggml_tensor *like, std::vector<uint8_t> bytes);
  // Writes through a temporary file and a rename, so a reader never sees half a GGUF.
  void write(const std::string &path);
  // The whole GGUF file in memory (what `write` would put on disk).
  std::vector<uint8_t> bytes();

private:
  GgufPtr out_;
  std::vector<ContextPtr> ctxs_;
  std::vector<std::vector<uint8_t>> keep_;
  ggml_tensor *copyOf(ggml_tensor *t, const char *suffix);
};

}  // namespace wr1
