// HttpPolicy over llama-server fleets (see README-http.md).
export * from "./http/index.js";
export {
  ChatRenderer,
  type ChatTemplateKind,
  type ChatTokenizer,
  chatTemplateFor,
  GEMMA_TEMPLATE,
  templateHandlesToolRole,
} from "./llama/chat.js";
export {
  createLlamaCppPolicy,
  type KvCacheType,
  LlamaCppPolicy,
  type LlamaCppPolicyConfig,
  type LlamaCppPolicyShape,
} from "./llama/policy.js";
// hf: URIs resolved once to a local file (the trainer hands the same file to policy and learner).
export { isRemoteModelUri, resolveModelPath } from "./llama/resolve-model.js";
// The native engine on its own (LlamaCppPolicy runs on it by default).
export {
  createNativeSampler,
  type NativeLoraAdapter,
  type NativeSampler,
  type NativeSamplerConfig,
  type NativeSamplerSequence,
} from "./native/sampler.js";
