// Saving what the learner trained: the full model (LoRA merged into F32 bases), a llama.cpp LoRA
// adapter, and the learner state (trainable weights, AdamW moments, step) for resuming.
#pragma once

#include <string>

#include "model.h"

namespace wr1 {

void saveModel(Model &m, const std::string &path);
void saveAdapter(Model &m, const std::string &path);
void saveState(Model &m, const std::string &path);
// Checks every tensor before touching any, so a mismatched file leaves the learner as it was.
void loadState(Model &m, const std::string &path);

}  // namespace wr1
