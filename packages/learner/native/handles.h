// Owning handles for ggml / gguf objects, so every early return and exception frees them.
#pragma once

#include <memory>
#include <stdexcept>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml.h"
#include "gguf.h"

namespace wr1 {

using Error = std::runtime_error;

struct ContextFree {
  void operator()(ggml_context *c) const { ggml_free(c); }
};
struct GgufFree {
  void operator()(gguf_context *g) const { gguf_free(g); }
};
struct BufferFree {
  void operator()(ggml_backend_buffer *b) const { ggml_backend_buffer_free(b); }
};
struct BackendFree {
  void operator()(ggml_backend *b) const { ggml_backend_free(b); }
};
struct GallocrFree {
  void operator()(ggml_gallocr *a) const { ggml_gallocr_free(a); }
};

using ContextPtr = std::unique_ptr<ggml_context, ContextFree>;
using GgufPtr = std::unique_ptr<gguf_context, GgufFree>;
using BufferPtr = std::unique_ptr<ggml_backend_buffer, BufferFree>;
using BackendPtr = std::unique_ptr<ggml_backend, BackendFree>;
using GallocrPtr = std::unique_ptr<ggml_gallocr, GallocrFree>;

// A metadata-only context (tensors are allocated later in a backend buffer).
inline ContextPtr metadataContext(size_t tensors, size_t graphBytes = 0) {
  ggml_init_params p = {ggml_tensor_overhead() * tensors + graphBytes, nullptr, true};
  ContextPtr ctx(ggml_init(p));
  if (!ctx) throw Error("could not create a ggml context");
  return ctx;
}

}  // namespace wr1
