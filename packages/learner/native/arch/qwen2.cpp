// qwen2: the llama block with NEOX rotary embeddings (its q/k/v biases are optional tensors).
#include "llama.h"

namespace wr1 {

extern const Architecture qwen2Architecture;
const Architecture qwen2Architecture = {"qwen2", GGML_ROPE_TYPE_NEOX, llamaBlock};

}  // namespace wr1
