// Saving what the learner trained: the full model (LoRA merged into F32 bases), a llama.cpp LoRA
// adapter, and the learner state (trainable weights, AdamW moments, step) for resuming.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace wr1 {

void saveModel(Model &m, const std::string &path);
void saveAdapter(Model &m, const std::string &path);
// The LoRA adapter GGUF saveAdapter writes, as bytes (for a sampler that loads it from memory).
std::vector<uint8_t> adapterBytes(Model &m);
void saveState(Model &m, const std::string &path);
// Checks every tensor before touching any, so a mismatched file leaves the learner as it was.
void loadState(Model &m, const std::string &path);

}  // namespace wr1
