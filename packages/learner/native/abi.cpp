#include "abi.h"

#include "ggml.h"

#ifndef WR1_GGML_VERSION
#define WR1_GGML_VERSION "unknown"
#endif
#ifndef WR1_LAST_OP
#define WR1_LAST_OP "unknown"
#endif

namespace wr1 {

std::string abiProblem() {
  const std::string version = ggml_version();
  if (version != WR1_GGML_VERSION)
    return "ggml version " + version + " does not match the headers the addon was built with (" WR1_GGML_VERSION ")";
  const size_t expected = sizeof(struct ggml_tensor) + 4 * sizeof(void *);
  if (ggml_tensor_overhead() != expected)
    return "ggml_tensor_overhead() = " + std::to_string(ggml_tensor_overhead()) + ", expected " +
           std::to_string(expected) + " (struct layout differs)";
  const char *last = ggml_op_name((enum ggml_op)(GGML_OP_COUNT - 1));
  if (last == nullptr || std::string(last) != WR1_LAST_OP)
    return std::string("last ggml op is ") + (last ? last : "(null)") + ", expected " WR1_LAST_OP;
  return "";
}

}  // namespace wr1
