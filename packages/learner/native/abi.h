// The ABI check: ggml has no stable ABI, so the headers the addon was compiled with and the
// libraries it loads must come from the same ggml.
#pragma once

#include <string>

namespace wr1 {

// Empty when the loaded ggml matches the headers; otherwise what differs.
std::string abiProblem();

}  // namespace wr1
