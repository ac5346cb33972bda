export {
  f16ToF32,
  f32ToF16,
  GgmlType,
  type GgmlTypeName,
  type GgufFile,
  GgufFormatError,
  type GgufMetadataValue,
  type GgufScalarType,
  type GgufTensor,
  gguf,
  metadataValue,
  parseGguf,
  type ReadGgufOptions,
  readGguf,
  serializeGguf,
  writeGguf,
} from "./gguf/gguf.js";
export {
  buildLoraGguf,
  type CreateLoraOptions,
  createLoraAdapter,
  type LoraAdapterSpec,
  type LoraPair,
  mergeLora,
  writeLoraGguf,
} from "./gguf/lora.js";
export { logSoftmaxAt, referenceLogits, referenceLogprobs } from "./gguf/reference.js";
export {
  buildTinyLlama,
  createRng,
  createTinyLlama,
  type TinyModelInfo,
  type TinyModelOptions,
} from "./gguf/tiny.js";
export {
  type ByteBpeVocabulary,
  buildByteBpeVocabulary,
  byteToUnicode,
  CHATML_TEMPLATE,
  DEFAULT_SPECIAL_TOKENS,
  learnMerges,
  type TinyTokenizerOptions,
} from "./gguf/tokenizer.js";
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
