// Rewrites a GGUF with its weight matrices in another type (F16, BF16, Q8_0, Q4_K, …), so LoRA
// over half-precision and quantized bases can be trained and tested on models made here.
#pragma once

#include <string>

namespace wr1 {

// Converts every 2-D F32 tensor whose rows fit the type's block size; 1-D tensors (norms, biases)
// stay F32. With type f32, dequantizes every 2-D tensor of another type instead. Returns the
// number of tensors converted.
int convertModel(const std::string &from, const std::string &to, const std::string &typeName);

}  // namespace wr1
