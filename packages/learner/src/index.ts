export { TRAINABLE_ARCHITECTURES } from "./architectures.js";
export {
  ALL_LORA_TARGETS,
  createGgmlLearner,
  GgmlLearner,
  type GgmlLearnerConfig,
  type GgmlLearnerShape,
  type LoraConfig,
  type LoraTarget,
  type OptimizerConfig,
} from "./learner.js";
export {
  backendsDirectory,
  convertModel,
  loadAddon,
  type NativeInfo,
  type NativeLearnerHandle,
  type NativeMemory,
} from "./native.js";
export { type PackedMicroBatch, type Placement, packTokens, planPackedBatches, ROW_ALIGN } from "./pack.js";
