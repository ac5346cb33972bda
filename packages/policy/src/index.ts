// HttpPolicy over llama-server fleets (see README-http.md).
export * from "./http/index.js";
export { ChatRenderer, type ChatTokenizer } from "./llama/chat.js";
export {
  createLlamaCppPolicy,
  type KvCacheType,
  LlamaCppPolicy,
  type LlamaCppPolicyConfig,
  type LlamaCppPolicyShape,
} from "./llama/policy.js";
// Experimental: the decode loop in C++ over libllama (generation only).
export {
  createNativeSampler,
  type NativeSampler,
  type NativeSamplerConfig,
  type NativeSamplerSequence,
} from "./native/sampler.js";
