// The architectures the learner can train, keyed by GGUF `general.architecture`. A new one is a
// file in arch/ that defines an Architecture and a line in this table.
#include "arch/llama.h"
#include "model.h"

namespace wr1 {

extern const Architecture qwen2Architecture;

const Architecture &findArchitecture(const std::string &name) {
  static const Architecture *const table[] = {&llamaArchitecture, &qwen2Architecture};
  std::string known;
  for (const Architecture *a : table) {
    if (name == a->name) return *a;
    known += known.empty() ? a->name : std::string(", ") + a->name;
  }
  throw Error("unsupported architecture " + name + " (supported: " + known + ")");
}

}  // namespace wr1
