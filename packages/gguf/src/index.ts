/**
 * @workflow-r1/gguf — GGUF files in TypeScript: read and write them, build tiny llama-architecture
 * models (with their byte-level BPE tokenizer) for tests and CPU runs, LoRA adapter files, and a
 * reference forward pass to check llama.cpp and the learner against.
 */
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
} from "./gguf.js";
export {
  buildLoraGguf,
  type CreateLoraOptions,
  createLoraAdapter,
  type LoraAdapterSpec,
  type LoraPair,
  mergeLora,
  writeLoraGguf,
} from "./lora.js";
export {
  REAL_MODELS,
  type RealModel,
  type RealModelName,
  realModelPath,
  realModelsDirectory,
} from "./real-models.js";
export { logSoftmaxAt, referenceLogits, referenceLogprobs } from "./reference.js";
export {
  buildTinyLlama,
  createRng,
  createTinyLlama,
  type TinyModelInfo,
  type TinyModelOptions,
} from "./tiny.js";
export {
  type ByteBpeVocabulary,
  buildByteBpeVocabulary,
  byteToUnicode,
  CHATML_TEMPLATE,
  DEFAULT_SPECIAL_TOKENS,
  learnMerges,
  type TinyTokenizerOptions,
} from "./tokenizer.js";
